package cli

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// fields splits stdout into lines of whitespace-separated fields.
func fields(stdout string) [][]string {
	var out [][]string
	for _, l := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		out = append(out, strings.Fields(l))
	}
	return out
}

func TestClientsTable(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	n.dial("u1", "")
	n.dial("u1", "")
	n.dial("longer-user-id", "")
	n.waitConns("u1", 2)
	n.waitConns("longer-user-id", 1)

	r := n.run("clients")
	want := [][]string{{"USER", "CONNECTIONS"}, {"longer-user-id", "1"}, {"u1", "2"}, {"total:", "2"}}
	if r.code != 0 || !reflect.DeepEqual(fields(r.stdout), want) {
		t.Fatalf("exit %d, stdout:\n%s\nstderr %q; want %v", r.code, r.stdout, r.stderr, want)
	}
	// The columns line up.
	lines := strings.Split(r.stdout, "\n")
	if col := strings.Index(lines[0], "CONNECTIONS"); col < 0 || strings.Index(lines[2], "2") != col {
		t.Errorf("columns not aligned:\n%s", r.stdout)
	}

	r = n.run("clients", "--limit", "1", "--offset", "1")
	want = [][]string{{"USER", "CONNECTIONS"}, {"u1", "2"}, {"total:", "2"}}
	if r.code != 0 || !reflect.DeepEqual(fields(r.stdout), want) {
		t.Fatalf("paged: exit %d, stdout %q; want %v", r.code, r.stdout, want)
	}

	r = n.run("clients", "--json")
	var list struct {
		Users []struct {
			UserID      string `json:"userId"`
			Connections int    `json:"connections"`
		} `json:"users"`
		Total int `json:"total"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || list.Total != 2 || len(list.Users) != 2 {
		t.Fatalf("--json: exit %d, stdout %q", r.code, r.stdout)
	}

	for _, args := range [][]string{{"clients", "--limit", "-1"}, {"clients", "--offset", "x"}, {"clients", "a", "b"}, {"clients", "--limit", "1", "u1"}, {"clients", "bad/user"}} {
		if r := n.run(args...); r.code != 2 || r.stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2", args, r.code, r.stderr)
		}
	}
}

func TestClientsEmpty(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	r := n.run("clients")
	if r.code != 0 || r.stdout != "USER  CONNECTIONS\ntotal: 0\n" {
		t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
	}
}

func TestClientsOneUser(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	conn := n.dial("u1", "")
	n.dial("u1", "")
	n.waitConns("u1", 2)
	n.publish("u1", `"hello"`)
	readFrame(t, conn)
	n.publish("offline", `"queued"`)

	// messagesSent counts once the write finished, which may be after the client read it.
	var r result
	var rows [][]string
	waitFor(t, "both connections counting the message sent", func() bool {
		r = n.run("clients", "u1")
		rows = fields(r.stdout)
		return r.code == 0 && len(rows) == 5 && rows[2][len(rows[2])-1] == "1" && rows[3][len(rows[3])-1] == "1" &&
			strings.Join(rows[4], " ") == "pending: 0"
	})
	if !reflect.DeepEqual(rows[0], []string{"user:", "u1"}) ||
		strings.Join(rows[1], " ") != "CONNECTION REMOTE ADDR CONNECTED AT MESSAGES SENT" {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	for _, row := range rows[2:4] {
		if len(row) < 4 || !strings.HasPrefix(row[1], "127.0.0.1:") || !strings.HasSuffix(row[2], "Z") {
			t.Fatalf("connection row %q (stdout:\n%s)", row, r.stdout)
		}
	}

	r = n.run("clients", "offline")
	if r.code != 0 || !strings.Contains(r.stdout, "connections: none") || !strings.Contains(r.stdout, "pending: 1") {
		t.Fatalf("offline user: exit %d, stdout %q", r.code, r.stdout)
	}

	r = n.run("clients", "--json", "u1")
	var d struct {
		UserID      string            `json:"userId"`
		Connections []json.RawMessage `json:"connections"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &d) != nil || d.UserID != "u1" || len(d.Connections) != 2 {
		t.Fatalf("--json: exit %d, stdout %q", r.code, r.stdout)
	}

	r = n.run("clients", "nobody")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "404") {
		t.Fatalf("unknown user: exit %d, stdout %q, stderr %q; want 1 and the 404", r.code, r.stdout, r.stderr)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"send", "listen", "clients"} {
		if !IsCommand(cmd) {
			t.Errorf("IsCommand(%q) = false", cmd)
		}
		for _, h := range []string{"-h", "--help", "-help"} {
			var out, errb bytes.Buffer
			code := Run(t.Context(), []string{cmd, h}, nil, nil, &out, &errb)
			text := out.String()
			if code != 0 || errb.Len() != 0 {
				t.Fatalf("%s %s: exit %d, stderr %q", cmd, h, code, errb.String())
			}
			for _, want := range []string{"Usage:", "pushlane " + cmd, "Examples:", "--server URL", "--key KEY", "--token TOKEN", "--timeout", "--insecure"} {
				if !strings.Contains(text, want) {
					t.Errorf("%s %s: help lacks %q:\n%s", cmd, h, want, text)
				}
			}
		}
	}
	for _, name := range []string{"", "serve", "bench", "help", "-h"} {
		if IsCommand(name) {
			t.Errorf("IsCommand(%q) = true", name)
		}
	}

	var buf bytes.Buffer
	Usage(&buf)
	for _, want := range []string{"--config FILE", "pushlane send", "pushlane listen", "pushlane clients", "pushlane bench", "load test, see pushlane bench -h", "PUSH_SERVER", "PUSH_API_KEY", "PUSH_TOKEN"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("Usage lacks %q:\n%s", want, buf.String())
		}
	}

	var out, errb bytes.Buffer
	if code := Run(t.Context(), nil, nil, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "Usage:") {
		t.Errorf("no args: exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := Run(t.Context(), []string{"frobnicate"}, nil, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, errb.String())
	}
	if out.Len() != 0 {
		t.Errorf("errors printed to stdout: %q", out.String())
	}
}
