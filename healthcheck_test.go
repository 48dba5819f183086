package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"pushlane/config"
)

// TestHealthcheck runs `pushlane healthcheck` against a real server started by run: 0 when it is
// healthy, found through server.addr from the environment as in the container image, or through
// --url; 1 when the server answers 503 or nothing listens.
func TestHealthcheck(t *testing.T) {
	cfgPath, _ := testConfig(t, t.TempDir(), "127.0.0.1:0")
	p := startInProcess(t, cfgPath)
	_, port, _ := strings.Cut(p.addr, ":")

	unhealthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"error","store":"unavailable","broker":"ok"}`))
	}))
	defer unhealthy.Close()
	closed := freeAddr(t)

	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantOut  string // in stdout (success) or stderr (failure)
	}{
		{"server.addr from the environment", nil, map[string]string{"PUSH_SERVER_ADDR": ":" + port}, exitOK, `"status":"ok"`},
		{"--url", []string{"--url", p.base + "/healthz"}, nil, exitOK, "200"},
		{"503", []string{"--url", unhealthy.URL + "/healthz"}, nil, exitFailed, "503"},
		{"nothing listening", nil, map[string]string{"PUSH_SERVER_ADDR": closed}, exitFailed, "connection refused"},
		{"bad config", nil, map[string]string{"PUSH_SERVER_ADDR": "no-port"}, exitConfig, "server.addr"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			getenv := func(k string) string { return tc.env[k] }
			code := run(t.Context(), append([]string{"healthcheck"}, tc.args...), getenv, nil, &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stdout %q, stderr %q", code, tc.wantCode, stdout.String(), stderr.String())
			}
			out := stdout.String()
			if code != exitOK {
				out = stderr.String()
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Errorf("output %q does not contain %q", out, tc.wantOut)
			}
		})
	}
}

func TestHealthURL(t *testing.T) {
	tlsOn := config.TLS{CertFile: "c.pem", KeyFile: "k.pem"}
	cases := []struct {
		server config.Server
		want   string
	}{
		{config.Server{Addr: ":8080"}, "http://127.0.0.1:8080/healthz"},
		{config.Server{Addr: "0.0.0.0:9000"}, "http://127.0.0.1:9000/healthz"},
		{config.Server{Addr: "[::]:9000"}, "http://127.0.0.1:9000/healthz"},
		{config.Server{Addr: "10.1.2.3:80"}, "http://10.1.2.3:80/healthz"},
		{config.Server{Addr: "[::1]:443", TLS: tlsOn}, "https://[::1]:443/healthz"},
	}
	for _, tc := range cases {
		got, err := healthURL(tc.server)
		if err != nil || got != tc.want {
			t.Errorf("healthURL(%+v) = %q, %v; want %q", tc.server, got, err, tc.want)
		}
	}
}
