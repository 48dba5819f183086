package main

// In-process tests of start-up and shutdown as an operator meets them: configuration errors that
// only show when a value is used, the stop log, the metrics listener, and the help texts.

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/config"
)

// runBounded runs the program with args until it returns or 20s pass (then the context ends it:
// a configuration error that went unnoticed would serve until then).
func runBounded(t *testing.T, args []string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code = run(ctx, args, noEnv, nil, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestRunConfigErrorsFoundLate: an unknown key in the file, and a store.path that cannot be
// written, stop start-up with exit 2 and one line naming the key.
func TestRunConfigErrorsFoundLate(t *testing.T) {
	dir := t.TempDir()
	good, _ := testConfig(t, dir, "127.0.0.1:0")
	base, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	typo := filepath.Join(dir, "typo.yaml")
	withTypo := strings.Replace(string(base), "  writeWait: 2s\n", "  writeWait: 2s\n  pingIntervall: 5s\n", 1)
	if err := os.WriteFile(typo, []byte(withTypo), 0o644); err != nil {
		t.Fatal(err)
	}
	// A regular file where the database's folder should be: no one, root included, can create
	// the database under it.
	notADir := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(notADir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	unwritable := filepath.Join(dir, "unwritable.yaml")
	yaml := strings.Replace(string(base), "path: ", "path: "+`"`+filepath.Join(notADir, "push.db")+`" # was `, 1)
	if err := os.WriteFile(unwritable, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, file string
		naming     []string
	}{
		{"unknown key", typo, []string{"websocket.pingintervall", "did you mean websocket.pingInterval?"}},
		{"unwritable store.path", unwritable, []string{"store.path", notADir}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runBounded(t, []string{"--config", tc.file})
			if code != exitConfig {
				t.Fatalf("exit code %d, want 2; stderr:\n%s", code, stderr)
			}
			msg := strings.TrimSpace(stderr)
			for _, n := range tc.naming {
				if !strings.Contains(msg, n) {
					t.Errorf("stderr does not say %q:\n%s", n, msg)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("stderr is more than one line:\n%s", msg)
			}
			if stdout != "" {
				t.Errorf("stdout should be empty, got %q", stdout)
			}
		})
	}
}

// TestStopLogTellsAnUnfinishedDrain: when the drain does not finish within
// server.shutdownTimeout (here a subscriber that never reads, so it never answers the close
// frame), the log says so and does not claim a clean stop.
func TestStopLogTellsAnUnfinishedDrain(t *testing.T) {
	dir := t.TempDir()
	cfgPath, _ := testConfig(t, dir, "127.0.0.1:0")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// One second to drain, while the server waits up to min(writeWait, 2s) for a close reply.
	yaml := strings.NewReplacer("shutdownTimeout: 5s", "shutdownTimeout: 1s", "writeWait: 2s", "writeWait: 10s").Replace(string(b))
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startInProcess(t, cfgPath)
	conn := subscribe(t, p.addr, "never-reads", "")
	// An app-level ping answered proves the connection's reader runs (it is past the handshake);
	// after the pong the client reads nothing more, so it never answers the close frame.
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, conn, 10*time.Second); f.Type != "pong" {
		t.Fatalf("frame %+v, want the pong", f)
	}
	p.cancel()
	select {
	case code := <-p.exit:
		p.exit <- code
		if code != exitOK {
			t.Fatalf("exit code %d, want 0 (nothing accepted was lost); stderr:\n%s", code, p.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return")
	}
	log := p.stderr.String()
	if !strings.Contains(log, "did not drain") {
		t.Fatalf("the log does not say that the drain did not finish:\n%s", log)
	}
	if strings.Contains(log, "stopped cleanly") {
		t.Errorf("the log claims a clean stop after an unfinished drain:\n%s", log)
	}
	if !strings.Contains(log, "pushlane stopped after a drain that did not finish") {
		t.Errorf("the log has no final stop line:\n%s", log)
	}
}

var metricsLine = regexp.MustCompile(`pushlane metrics on (http://\S+/metrics)`)

// TestMetricsOnTheirOwnListener: with server.metricsAddr, GET /metrics is served there and not
// on server.addr.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	dir := t.TempDir()
	cfgPath, _ := testConfig(t, dir, "127.0.0.1:0")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.Replace(string(b), "server:\n", "server:\n  metricsAddr: \"127.0.0.1:0\"\n", 1)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startInProcess(t, cfgPath)
	m := metricsLine.FindStringSubmatch(p.stdout.String())
	if m == nil {
		t.Fatalf("no metrics line on stdout:\n%s", p.stdout.String())
	}
	status, body := get(t, p.client, m[1])
	if status != http.StatusOK || !strings.Contains(body, "pushlane_connections") {
		t.Fatalf("GET %s: %d, body without pushlane_connections:\n%.300s", m[1], status, body)
	}
	if status, body := get(t, p.client, p.base+"/metrics"); status != http.StatusNotFound {
		t.Fatalf("GET /metrics on server.addr: %d %.300s, want 404 (served on server.metricsAddr)", status, body)
	}
}

func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	res, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// TestHelpTextsNameOnlyVariablesTheProgramReads: every PUSH_* variable a help text mentions is
// one the server or the client commands read: PUSH_ + a configuration key, or the client's
// PUSH_SERVER, PUSH_API_KEY and PUSH_TOKEN.
func TestHelpTextsNameOnlyVariablesTheProgramReads(t *testing.T) {
	read := map[string]bool{"PUSH_SERVER": true, "PUSH_API_KEY": true, "PUSH_TOKEN": true}
	for _, k := range config.Keys() {
		read[config.EnvPrefix+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = true
	}
	variable := regexp.MustCompile(`PUSH[A-Z_]*`)
	for _, args := range [][]string{{"-h"}, {"send", "-h"}, {"listen", "-h"}, {"clients", "-h"}, {"bench", "-h"}} {
		_, stdout, stderr := runBounded(t, args)
		for _, v := range variable.FindAllString(stdout+stderr, -1) {
			if !read[v] {
				t.Errorf("pushlane %s mentions %s, which nothing reads", strings.Join(args, " "), v)
			}
		}
	}
}
