package main

// The README's commands, run as a new user would run them: on a fresh clone, in order, against
// the built binary on a free port. Blocks of README.md marked with an HTML comment take part:
//
//	<!-- readme-test: run -->                                  each line is a shell command; it must exit 0
//	<!-- readme-test: output -->                               the stdout of the previous run block
//	<!-- readme-test: background name=N ready="TEXT" -->       start the command, wait for TEXT in its output
//	<!-- readme-test: output name=N -->                        lines the background command N must print
//	<!-- readme-test: stop -->                                 SIGINT every background command; each exits 0
//
// Outputs are compared after normalizing what differs between runs: commit hashes, the Go
// version and platform, createdAt timestamps.

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/viper"
)

// readmeStep is one marked block.
type readmeStep struct {
	kind  string // run, output, background, stop
	name  string
	ready string
	line  int // of the marker, for messages
	body  []string
}

var readmeMarker = regexp.MustCompile(`^<!-- readme-test: (\w+)((?: \w+=(?:"[^"]*"|\S+))*) -->$`)
var readmeAttr = regexp.MustCompile(`(\w+)=("[^"]*"|\S+)`)

// parseReadme returns the marked blocks of a README, in order.
func parseReadme(text string) ([]readmeStep, error) {
	var steps []readmeStep
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		m := readmeMarker.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			continue
		}
		s := readmeStep{kind: m[1], line: i + 1}
		for _, a := range readmeAttr.FindAllStringSubmatch(m[2], -1) {
			v := strings.Trim(a[2], `"`)
			switch a[1] {
			case "name":
				s.name = v
			case "ready":
				s.ready = v
			}
		}
		if s.kind != "stop" {
			j := i + 1
			for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
				j++
			}
			if j >= len(lines) || !strings.HasPrefix(lines[j], "```") {
				return nil, &readmeError{line: i + 1, msg: "marker not followed by a fenced block"}
			}
			for j++; j < len(lines) && !strings.HasPrefix(lines[j], "```"); j++ {
				s.body = append(s.body, lines[j])
			}
			i = j
		}
		steps = append(steps, s)
	}
	return steps, nil
}

type readmeError struct {
	line int
	msg  string
}

func (e *readmeError) Error() string { return "README.md:" + itoa(e.line) + ": " + e.msg }

func itoa(n int) string { return strconv.Itoa(n) }

var readmeNormalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`commit (unknown|[0-9a-f]{12}(\+dirty)?)`), "commit <commit>"},
	{regexp.MustCompile(`go1\.\d+(\.\d+)?\S* \w+/\w+`), "<go> <platform>"},
	{regexp.MustCompile(`"createdAt":"[^"]+"`), `"createdAt":"<time>"`},
}

func normalizeReadme(s string) string {
	for _, n := range readmeNormalizers {
		s = n.re.ReplaceAllString(s, n.with)
	}
	return strings.TrimRight(s, "\n")
}

// TestREADMECommands runs the README on a fresh clone (see the top of this file).
func TestREADMECommands(t *testing.T) {
	needPackagingTests(t)
	text, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := parseReadme(string(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) < 8 {
		t.Fatalf("README.md has %d marked blocks; the walkthrough lost its markers?", len(steps))
	}

	clone := freshClone(t)
	addr := freeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	env := append(environWithoutPush(),
		"PUSH_SERVER_ADDR="+addr,   // the server: a free port instead of :8080
		"PUSH_SERVER=http://"+addr, // the CLI
		"GOFLAGS=-buildvcs=true",   // a clone's build carries its commit, as on a user's machine
	)
	rewrite := strings.NewReplacer("localhost:8080", "127.0.0.1:"+port, "127.0.0.1:8080", "127.0.0.1:"+port)

	type bgProc struct {
		name string
		cmd  *exec.Cmd
		out  *syncBuffer
		done chan struct{}
	}
	var bgs []*bgProc
	t.Cleanup(func() {
		for _, b := range bgs {
			select {
			case <-b.done:
			default:
				_ = b.cmd.Process.Kill()
				<-b.done
			}
		}
	})
	lastOut := ""
	for _, s := range steps {
		where := "README.md:" + itoa(s.line)
		switch s.kind {
		case "run":
			lastOut = ""
			for _, line := range s.body {
				cmdline := strings.TrimSpace(line)
				if cmdline == "" || strings.HasPrefix(cmdline, "#") {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				cmd := exec.CommandContext(ctx, "bash", "-c", rewrite.Replace(cmdline))
				cmd.Dir, cmd.Env = clone, env
				var stderr syncBuffer
				cmd.Stderr = &stderr
				start := time.Now()
				out, err := cmd.Output()
				cancel()
				if err != nil {
					t.Fatalf("%s: %s: %v\nstdout: %s\nstderr: %s", where, cmdline, err, out, stderr.String())
				}
				t.Logf("%s: %s (%v)", where, cmdline, time.Since(start).Round(time.Millisecond))
				lastOut += string(out)
			}
		case "output":
			want := normalizeReadme(strings.Join(s.body, "\n"))
			if s.name == "" {
				if got := normalizeReadme(lastOut); got != want {
					t.Errorf("%s: the command printed\n%s\nthe README says\n%s", where, got, want)
				}
				continue
			}
			var b *bgProc
			for _, x := range bgs {
				if x.name == s.name {
					b = x
				}
			}
			if b == nil {
				t.Fatalf("%s: no background command named %q", where, s.name)
			}
			waitFor(t, 20*time.Second, s.name+" to print "+want, func() bool {
				return strings.Contains(normalizeReadme(b.out.String()), want)
			})
		case "background":
			if len(s.body) != 1 {
				t.Fatalf("%s: a background block holds one command", where)
			}
			cmd := exec.Command("bash", "-c", "exec "+rewrite.Replace(strings.TrimSpace(s.body[0])))
			cmd.Dir, cmd.Env = clone, env
			b := &bgProc{name: s.name, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
			both := &syncBuffer{}
			cmd.Stdout = multi{b.out, both}
			cmd.Stderr = both
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { _ = cmd.Wait(); close(b.done) }()
			bgs = append(bgs, b)
			waitFor(t, time.Minute, s.name+" to print "+s.ready, func() bool {
				select {
				case <-b.done:
					t.Fatalf("%s: %s exited: %v\n%s", where, s.body[0], cmd.ProcessState, both.String())
				default:
				}
				return strings.Contains(both.String(), s.ready)
			})
		case "stop":
			for i := len(bgs) - 1; i >= 0; i-- {
				b := bgs[i]
				_ = b.cmd.Process.Signal(syscall.SIGINT)
				select {
				case <-b.done:
				case <-time.After(30 * time.Second):
					t.Fatalf("%s: %s did not stop within 30s of SIGINT", where, b.name)
				}
				if code := b.cmd.ProcessState.ExitCode(); code != 0 {
					t.Errorf("%s: %s exited %d after SIGINT, want 0", where, b.name, code)
				}
			}
			bgs = nil
		default:
			t.Fatalf("%s: unknown readme-test kind %q", where, s.kind)
		}
	}
	if len(bgs) > 0 {
		t.Errorf("the README leaves %d background commands running: end the walkthrough with a stop marker", len(bgs))
	}
	// The clone's own build reports the commit it was built from.
	out, err := exec.Command(filepath.Join(clone, "pushlane"), "version").Output()
	head, herr := exec.Command("git", "-C", clone, "rev-parse", "HEAD").Output()
	if err != nil || herr != nil {
		t.Fatalf("version: %v; rev-parse: %v", err, herr)
	}
	if want := "(commit " + string(head[:12]); !strings.Contains(string(out), want) {
		t.Errorf("./pushlane version in the clone printed %q, want %q (the Go build information's vcs.revision)", out, want)
	}
}

type multi [2]*syncBuffer

func (m multi) Write(p []byte) (int, error) {
	_, _ = m[0].Write(p)
	return m[1].Write(p)
}

// freshClone clones this repository into a temporary directory, then copies in the working
// tree's uncommitted changes (so that the README being tested is the one on disk). Untracked
// files that git ignores are left out, as a clone would.
func freshClone(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pushlane")
	runCmd(t, 2*time.Minute, ".", os.Environ(), "git", "clone", "--quiet", "--no-hardlinks", ".", dir)
	changed := runCmd(t, time.Minute, ".", os.Environ(), "git", "ls-files", "--modified", "--others", "--exclude-standard")
	sc := bufio.NewScanner(strings.NewReader(changed))
	for sc.Scan() {
		name := sc.Text()
		b, err := os.ReadFile(name)
		if err != nil {
			continue // deleted in the working tree
		}
		st, _ := os.Stat(name)
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	if deleted := runCmd(t, time.Minute, ".", os.Environ(), "git", "ls-files", "--deleted"); deleted != "" {
		for _, name := range strings.Fields(deleted) {
			_ = os.Remove(filepath.Join(dir, name))
		}
	}
	return dir
}

// TestREADMEConfigTable: every key of config.yaml has a row in the README's configuration table.
func TestREADMEConfigTable(t *testing.T) {
	text, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(text), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(line, "|", 3)[1]
		for _, k := range regexp.MustCompile("`([a-zA-Z.]+)`").FindAllStringSubmatch(first, -1) {
			documented[strings.ToLower(k[1])] = true
		}
	}
	v := viper.New()
	v.SetConfigFile("config.yaml")
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	for _, k := range v.AllKeys() {
		if !documented[k] {
			t.Errorf("config.yaml key %s has no row in the README's configuration table", k)
		}
	}
}

func TestParseReadme(t *testing.T) {
	steps, err := parseReadme("x\n<!-- readme-test: background name=server ready=\"listening on\" -->\n\n```sh\n./pushlane\n```\n<!-- readme-test: stop -->\n")
	if err != nil || len(steps) != 2 || steps[0].name != "server" || steps[0].ready != "listening on" || steps[0].body[0] != "./pushlane" || steps[1].kind != "stop" {
		t.Fatalf("%+v, %v", steps, err)
	}
	if _, err := parseReadme("<!-- readme-test: run -->\ntext\n"); err == nil {
		t.Error("a marker without a block: no error")
	}
	if got := normalizeReadme(`pushlane dev (commit 0123456789ab+dirty, go1.26.8 linux/amd64)`); got != "pushlane dev (commit <commit>, <go> <platform>)" {
		t.Errorf("normalize: %q", got)
	}
}
