package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"pushlane/internal/vapidkey"
)

// TestWebPushKeysCommand: `pushlane webpush keys` prints a new, valid pair each run, in the
// config.yaml form and (--env) as environment variables, and the printed pair starts a server.
func TestWebPushKeysCommand(t *testing.T) {
	keys := func(args ...string) string {
		t.Helper()
		var stdout, stderr syncBuffer
		if code := run(context.Background(), append([]string{"webpush", "keys"}, args...), func(string) string { return "" }, nil, &stdout, &stderr); code != exitOK {
			t.Fatalf("webpush keys %v: exit %d, stderr %s", args, code, stderr.String())
		}
		return stdout.String()
	}
	yamlLine := regexp.MustCompile(`(?m)^  (vapidPublicKey|vapidPrivateKey): "([A-Za-z0-9_-]+)"$`)
	pairOf := func(out string) vapidkey.Pair {
		var p vapidkey.Pair
		for _, m := range yamlLine.FindAllStringSubmatch(out, -1) {
			if m[1] == "vapidPublicKey" {
				p.Public = m[2]
			} else {
				p.Private = m[2]
			}
		}
		return p
	}
	first, second := pairOf(keys()), pairOf(keys())
	for _, p := range []vapidkey.Pair{first, second} {
		if err := vapidkey.Check(p); err != nil {
			t.Fatalf("printed pair %+v: %v", p, err)
		}
	}
	if first == second {
		t.Fatal("two runs printed the same pair")
	}
	env := keys("--env")
	m := regexp.MustCompile(`(?m)^PUSH_WEBPUSH_VAPIDPUBLICKEY=(\S+)\nPUSH_WEBPUSH_VAPIDPRIVATEKEY=(\S+)\n$`).FindStringSubmatch(env)
	if m == nil {
		t.Fatalf("--env printed %q", env)
	}
	if err := vapidkey.Check(vapidkey.Pair{Public: m[1], Private: m[2]}); err != nil {
		t.Fatalf("--env pair: %v", err)
	}

	// The printed pair, given through the environment, starts a server with Web Push on.
	dir := t.TempDir()
	cfg, _ := testConfig(t, dir, "127.0.0.1:0")
	vars := map[string]string{"PUSH_WEBPUSH_ENABLED": "true", "PUSH_WEBPUSH_VAPIDPUBLICKEY": m[1],
		"PUSH_WEBPUSH_VAPIDPRIVATEKEY": m[2], "PUSH_WEBPUSH_SUBJECT": "mailto:ops@example.com"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config", cfg}, func(k string) string { return vars[k] }, nil, &stdout, &stderr)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stdout.String(), "listening on") {
		select {
		case code := <-done:
			t.Fatalf("server exited with %d before listening: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// TestRunWebPushConfigErrors: with webpush.enabled, missing or invalid keys or subject stop
// start-up with exit code 2 and one line naming the key.
func TestRunWebPushConfigErrors(t *testing.T) {
	good, err := vapidkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := vapidkey.Generate()
	dir := t.TempDir()
	cfg, _ := testConfig(t, dir, "127.0.0.1:0")
	on := func(extra map[string]string) map[string]string {
		env := map[string]string{"PUSH_WEBPUSH_ENABLED": "true", "PUSH_WEBPUSH_VAPIDPUBLICKEY": good.Public,
			"PUSH_WEBPUSH_VAPIDPRIVATEKEY": good.Private, "PUSH_WEBPUSH_SUBJECT": "mailto:ops@example.com",
			"PUSH_STORE_PATH": filepath.Join(dir, "push.db")}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	cases := []struct {
		name   string
		env    map[string]string
		naming string
	}{
		{"no public key", on(map[string]string{"PUSH_WEBPUSH_VAPIDPUBLICKEY": ""}), "webpush.vapidPublicKey"},
		{"no private key", on(map[string]string{"PUSH_WEBPUSH_VAPIDPRIVATEKEY": ""}), "webpush.vapidPrivateKey"},
		{"public key not a point", on(map[string]string{"PUSH_WEBPUSH_VAPIDPUBLICKEY": "BAAA"}), "webpush.vapidPublicKey"},
		{"private key not base64url", on(map[string]string{"PUSH_WEBPUSH_VAPIDPRIVATEKEY": "not a key!"}), "webpush.vapidPrivateKey"},
		{"keys of two pairs", on(map[string]string{"PUSH_WEBPUSH_VAPIDPUBLICKEY": other.Public}), "webpush.vapidPublicKey"},
		{"no subject", on(map[string]string{"PUSH_WEBPUSH_SUBJECT": ""}), "webpush.subject"},
		{"subject not mailto or https", on(map[string]string{"PUSH_WEBPUSH_SUBJECT": "ops@example.com"}), "webpush.subject"},
		{"http subject", on(map[string]string{"PUSH_WEBPUSH_SUBJECT": "http://example.com"}), "webpush.subject"},
		{"negative delay", on(map[string]string{"PUSH_WEBPUSH_DELAY": "-1s"}), "webpush.delay"},
		{"maxPerUser 0", on(map[string]string{"PUSH_WEBPUSH_MAXPERUSER": "0"}), "webpush.maxPerUser"},
		{"origin with a path", on(map[string]string{"PUSH_WEBPUSH_ALLOWEDENDPOINTORIGINS": "https://push.example/p"}), "webpush.allowedEndpointOrigins"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			code := run(ctx, []string{"--config", cfg}, func(k string) string { return tc.env[k] }, nil, &stdout, &stderr)
			if code != exitConfig {
				t.Fatalf("exit code %d, want 2; stderr:\n%s", code, stderr.String())
			}
			msg := strings.TrimSpace(stderr.String())
			if !strings.Contains(msg, tc.naming) || strings.Contains(msg, "\n") {
				t.Errorf("stderr should be one line naming %q:\n%s", tc.naming, msg)
			}
		})
	}
}
