package redistest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Server is a redis-server of one test only, on a free loopback port, with AOF on, that the test
// can restart, pause (SIGSTOP) and resume. It is killed when the test ends.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	Addr string
	args []string
	cmd  *exec.Cmd
}

// StartServer starts a private redis-server with extra arguments (e.g. "--maxmemory", "2mb").
// It fails the test when $CI is set and redis-server is missing, and skips it otherwise.
func StartServer(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server is not installed and CI is set: %v", err)
		}
		t.Skipf("redis-server is not installed: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	s := &Server{t: t, bin: bin, dir: t.TempDir(), Addr: addr, args: extra}
	s.Start()
	t.Cleanup(func() {
		if s.cmd != nil {
			_ = s.cmd.Process.Signal(syscall.SIGCONT)
			_ = s.cmd.Process.Kill()
			_ = s.cmd.Wait()
		}
	})
	return s
}

// Start starts the server (again, after Shutdown) and waits until it answers.
func (s *Server) Start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	args := []string{"--bind", "127.0.0.1", "--port", port, "--dir", s.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--logfile", ""}
	s.cmd = exec.Command(s.bin, append(args, s.args...)...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	c := s.Client()
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			s.t.Fatalf("the private redis-server at %s did not answer within 10s", s.Addr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Client returns a new client of this server with the options pushlane uses; the caller closes it.
func (s *Server) Client() *goredis.Client {
	o := Options()
	o.Addr = s.Addr
	return goredis.NewClient(o)
}

// Shutdown stops the server gracefully (AOF flushed), as a restart does.
func (s *Server) Shutdown() {
	s.t.Helper()
	c := s.Client()
	defer c.Close()
	_ = c.Shutdown(context.Background()).Err() // the connection drops: an error is expected
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Pause stops the process (SIGSTOP): connections stay open and nothing answers, as when Redis
// stalls (a fork, a slow disk, a long script).
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("SIGSTOP redis-server: %v", err)
	}
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatalf("SIGCONT redis-server: %v", err)
	}
}
