package main

// Tests of what is shipped besides the code: the static binary the container image runs, the
// image itself (where a Docker daemon answers), and the systemd unit.

import (
	"context"
	"debug/elf"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// packagingEnv turns on the tests that build binaries of their own (a static build, a fresh
// clone): they take a minute or more of a 2-core machine, so `go test ./...` skips them and
// .ci/run runs them as steps of their own with PUSHLANE_PACKAGING_TESTS=1.
const packagingEnv = "PUSHLANE_PACKAGING_TESTS"

func needPackagingTests(t *testing.T) {
	t.Helper()
	if os.Getenv(packagingEnv) != "1" {
		t.Skipf("builds its own binary: set %s=1 to run it (.ci/run does)", packagingEnv)
	}
}

// runCmd runs name with args in dir within timeout and returns its combined output; it fails the
// test when the command fails.
func runCmd(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestStaticBinaryFromEmptyDir builds the binary with deploy/build-static.sh, the script the
// Dockerfile runs, and starts it as the image does: from an empty working directory (no
// config.yaml), configured by environment variables only, its SQLite file in a fresh directory.
// Then the image's HEALTHCHECK command, one publish and one delivery, and a clean SIGTERM.
func TestStaticBinaryFromEmptyDir(t *testing.T) {
	needPackagingTests(t)
	bin := filepath.Join(t.TempDir(), "pushlane")
	const version, commit = "v0.0.0-ci", "0123456789abcdef0123456789abcdef01234567"
	env := append(environWithoutPush(), "VERSION="+version, "COMMIT="+commit)
	runCmd(t, 10*time.Minute, ".", env, "sh", "deploy/build-static.sh", bin)

	// Static: no program interpreter (dynamic loader) and no shared library needed.
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	libs, _ := f.ImportedLibraries()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: not a static binary", bin)
		}
	}
	f.Close()
	if len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v", bin, libs)
	}

	got := strings.TrimSpace(runCmd(t, time.Minute, ".", environWithoutPush(), bin, "version"))
	if wantPrefix := fmt.Sprintf("pushlane %s (commit %s, go", version, commit[:12]); !strings.HasPrefix(got, wantPrefix) {
		t.Errorf("version: %q, want it to start with %q", got, wantPrefix)
	}

	workDir := t.TempDir() // empty, as / of the image holds no config.yaml
	stateDir := t.TempDir()
	addr := freeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	serverEnv := append(environWithoutPush(),
		"PUSH_SERVER_ADDR=127.0.0.1:"+port,
		"PUSH_STORE_PATH="+filepath.Join(stateDir, "push.db"),
		"PUSH_LOG_FORMAT=json",
	)
	p := &process{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{}), addr: addr, base: "http://" + addr}
	p.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	p.cmd = exec.Command(bin)
	p.cmd.Dir = workDir
	p.cmd.Env = serverEnv
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		p.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("stderr:\n%s", p.stderr.String())
		}
	})

	// The image's HEALTHCHECK: `/pushlane healthcheck` with the server's environment.
	waitFor(t, 30*time.Second, "pushlane healthcheck to exit 0", func() bool {
		if p.exited() {
			t.Fatalf("pushlane exited before it was healthy: %v", p.cmd.ProcessState)
		}
		cmd := exec.Command(bin, "healthcheck")
		cmd.Dir = workDir
		cmd.Env = serverEnv
		return cmd.Run() == nil
	})
	if !strings.Contains(p.stderr.String(), `"msg":"pushlane started"`) {
		t.Errorf("PUSH_LOG_FORMAT=json: no JSON start line in stderr:\n%s", p.stderr.String())
	}

	conn := subscribe(t, addr, "static-user", "")
	res := mustPublish(t, p.client, p.base, "static-user", map[string]any{"from": "static binary"})
	expectMessages(t, conn, "static-user", []want{{res.ID, map[string]any{"from": "static binary"}}})

	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM: %d", code)
	}
	if entries, _ := os.ReadDir(workDir); len(entries) != 0 {
		t.Errorf("the server wrote into its working directory: %v", entries)
	}
	if st, err := os.Stat(filepath.Join(stateDir, "push.db")); err != nil || st.Size() == 0 {
		t.Errorf("no SQLite file in the state directory: %v", err)
	}
}

// TestDockerBuild builds the image where a Docker daemon answers (`docker info`), and runs its
// `version` command. Without a daemon it is skipped, and says so.
func TestDockerBuild(t *testing.T) {
	needPackagingTests(t)
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker command on this machine")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info").CombinedOutput(); err != nil {
		t.Skipf("no Docker daemon answers (docker info: %v): image not built\n%s", err, lastLine(string(out)))
	}
	tag := fmt.Sprintf("pushlane:ci-%d", time.Now().UnixNano())
	runCmd(t, 15*time.Minute, ".", os.Environ(), "docker", "build", "--build-arg", "VERSION=v0.0.0-docker", "--build-arg", "COMMIT=cafe", "-t", tag, ".")
	t.Cleanup(func() { _ = exec.Command("docker", "image", "rm", "-f", tag).Run() })
	out := runCmd(t, 2*time.Minute, ".", os.Environ(), "docker", "run", "--rm", tag, "version")
	if !strings.HasPrefix(strings.TrimSpace(out), "pushlane v0.0.0-docker (commit cafe,") {
		t.Errorf("docker run %s version: %q", tag, out)
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// TestSystemdUnitVerifies checks docs/pushlane.service with `systemd-analyze verify` (skipped
// where systemd-analyze is not installed), and that its sandbox stays tight: `systemd-analyze
// security --offline` rates its exposure (0 best, 10 worst) at most 2.
func TestSystemdUnitVerifies(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed: docs/pushlane.service not verified")
	}
	unit, err := os.ReadFile("docs/pushlane.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart names an executable: point it at this test binary.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/pushlane\n") {
		t.Fatal("docs/pushlane.service: ExecStart is no longer /usr/local/bin/pushlane; update this test")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "pushlane.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/pushlane", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, _ = exec.CommandContext(ctx, "systemd-analyze", "security", "--offline=true", path).CombinedOutput()
	var level float64
	i := strings.Index(string(out), "Overall exposure level for pushlane.service: ")
	if i < 0 {
		t.Fatalf("systemd-analyze security printed no overall level:\n%s", out)
	}
	if _, err := fmt.Sscanf(string(out[i:]), "Overall exposure level for pushlane.service: %g", &level); err != nil {
		t.Fatalf("parsing the exposure level: %v\n%s", err, out)
	}
	if level > 2 {
		t.Errorf("exposure level %.1f, want at most 2:\n%s", level, out)
	}
	t.Logf("systemd-analyze security: exposure %.1f", level)
}
