package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"pushlane/config"
)

// repoConfig is the config.yaml at the repository root, relative to this package.
const repoConfig = "../config.yaml"

func noEnv(string) string { return "" }

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeYAML writes a config file built from "a.b.c" keys and YAML values, in a temp dir.
func writeYAML(t *testing.T, kv ...string) string {
	t.Helper()
	if len(kv)%2 != 0 {
		t.Fatal("writeYAML needs key/value pairs")
	}
	tree := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		parts := strings.Split(kv[i], ".")
		node := tree
		for _, p := range parts[:len(parts)-1] {
			next, ok := node[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				node[p] = next
			}
			node = next
		}
		var v any
		if err := yaml.Unmarshal([]byte(kv[i+1]), &v); err != nil {
			t.Fatalf("bad YAML value %q: %v", kv[i+1], err)
		}
		node[parts[len(parts)-1]] = v
	}
	out, err := yaml.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, string(out))
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pushlane.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, path string, getenv func(string) string) config.Result {
	t.Helper()
	res, err := config.Load(path, getenv)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	return res
}

// TestDefaults checks config.Default against the table in API.md.
func TestDefaults(t *testing.T) {
	c := config.Default()
	checks := []struct {
		key       string
		got, want any
	}{
		{"server.addr", c.Server.Addr, ":8080"},
		{"server.shutdownTimeout", c.Server.ShutdownTimeout, 10 * time.Second},
		{"websocket.pingInterval", c.WebSocket.PingInterval, 10 * time.Second},
		{"websocket.pongWait", c.WebSocket.PongWait, 30 * time.Second},
		{"websocket.writeWait", c.WebSocket.WriteWait, 10 * time.Second},
		{"websocket.maxMessageBytes", c.WebSocket.MaxMessageBytes, 65536},
		{"websocket.sendQueue", c.WebSocket.SendQueue, 256},
		{"websocket.allowedOrigins", len(c.WebSocket.AllowedOrigins), 0},
		{"websocket.maxConnsPerUser", c.WebSocket.MaxConnsPerUser, 16},
		{"websocket.maxConns", c.WebSocket.MaxConns, 0},
		{"auth.apiKeys", len(c.Auth.APIKeys), 0},
		{"auth.jwtSecret", c.Auth.JWTSecret, ""},
		{"store.driver", c.Store.Driver, "sqlite"},
		{"store.path", c.Store.Path, "data/push.db"},
		{"store.ttl", c.Store.TTL, 72 * time.Hour},
		{"store.maxPerUser", c.Store.MaxPerUser, 1000},
		{"store.sync", c.Store.Sync, "full"},
		{"broker.driver", c.Broker.Driver, "local"},
		{"redis.addr", c.Redis.Addr, "127.0.0.1:6379"},
		{"redis.password", c.Redis.Password, ""},
		{"redis.db", c.Redis.DB, 0},
		{"redis.keyPrefix", c.Redis.KeyPrefix, "pushlane:"},
		{"publish.idempotencyWindow", c.Publish.IdempotencyWindow, 24 * time.Hour},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("default %s = %#v, want %#v", ch.key, ch.got, ch.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
	// Every key of the API.md table is a known key.
	keys := config.Keys()
	for _, ch := range checks {
		if !slices.Contains(keys, ch.key) {
			t.Errorf("API.md key %s missing from config.Keys()", ch.key)
		}
	}
}

// TestLoadWithoutFileEqualsDefault: no config.yaml in the working directory means all defaults.
func TestLoadWithoutFileEqualsDefault(t *testing.T) {
	t.Chdir(t.TempDir())
	res, err := config.Load("", noEnv)
	if err != nil {
		t.Fatalf("Load with no default file: %v", err)
	}
	if res.File != "" {
		t.Errorf("File = %q, want none", res.File)
	}
	if !reflect.DeepEqual(res.Config, config.Default()) {
		t.Errorf("Load with no file:\n%+v\nwant the defaults:\n%+v", res.Config, config.Default())
	}
}

// TestDefaultFileIsRead: without --config, config.yaml in the working directory is read.
func TestDefaultFileIsRead(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, config.DefaultPath), []byte("server:\n  addr: \":7070\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	res := mustLoad(t, "", noEnv)
	if res.Config.Server.Addr != ":7070" {
		t.Errorf("server.addr = %q, want :7070 from ./config.yaml", res.Config.Server.Addr)
	}
	if res.File != config.DefaultPath {
		t.Errorf("File = %q, want %q", res.File, config.DefaultPath)
	}
}

// TestRepoConfigEqualsDefault: the shipped config.yaml shows every key at its default.
func TestRepoConfigEqualsDefault(t *testing.T) {
	res := mustLoad(t, repoConfig, noEnv)
	if res.File != repoConfig {
		t.Errorf("File = %q, want %q", res.File, repoConfig)
	}
	if !reflect.DeepEqual(res.Config, config.Default()) {
		t.Errorf("config.yaml loads as\n%+v\nbut the defaults are\n%+v", res.Config, config.Default())
	}
}

// TestRepoConfigHasEveryKey: every key, spelled exactly as in the table, is in config.yaml, and the
// file has no key the code does not know.
func TestRepoConfigHasEveryKey(t *testing.T) {
	raw, err := os.ReadFile(repoConfig)
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	var inFile []string
	var walk func(prefix string, node map[string]any)
	walk = func(prefix string, node map[string]any) {
		for k, v := range node {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			inFile = append(inFile, prefix+k)
		}
	}
	walk("", tree)
	sort.Strings(inFile)
	keys := config.Keys()
	for _, k := range keys {
		if !slices.Contains(inFile, k) {
			t.Errorf("key %s is not in config.yaml (case-sensitive)", k)
		}
	}
	for _, k := range inFile {
		if !slices.Contains(keys, k) {
			t.Errorf("config.yaml has %s, which config.Keys() does not list", k)
		}
	}
	// The keys are distinct.
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[strings.ToLower(k)] {
			t.Errorf("key %s listed twice", k)
		}
		seen[strings.ToLower(k)] = true
	}
}

func TestEnvOverrides(t *testing.T) {
	env := map[string]string{
		"PUSH_SERVER_ADDR":                ":9090",
		"PUSH_AUTH_APIKEYS":               "k1,k2",
		"PUSH_WEBSOCKET_PINGINTERVAL":     "3s",
		"PUSH_WEBSOCKET_ALLOWEDORIGINS":   " https://a.example , https://b.example:8443 ,",
		"PUSH_STORE_MAXPERUSER":           "5",
		"PUSH_STORE_TTL":                  "90m",
		"PUSH_STORE_DRIVER":               "memory",
		"PUSH_AUTH_JWTSECRET":             "s3cret",
		"PUSH_REDIS_KEYPREFIX":            "other:",
		"PUSH_WEBSOCKET_MAXCONNSPERUSER":  "0",
		"PUSH_WEBSOCKET_MAXMESSAGEBYTES":  "1024",
		"PUSH_SERVER_SHUTDOWNTIMEOUT":     "1m",
		"PUSH_NOT_A_KEY":                  "ignored",
		"PUSH_WEBSOCKET_PINGINTERVAL_X":   "ignored",
		"push_server_addr":                ":1", // names are upper case
		"PUSH_WEBSOCKET_SENDQUEUE_IGNORE": "x",
	}
	t.Chdir(t.TempDir())
	c := mustLoad(t, "", envMap(env)).Config
	if c.Server.Addr != ":9090" {
		t.Errorf("server.addr = %q", c.Server.Addr)
	}
	if !slices.Equal(c.Auth.APIKeys, []string{"k1", "k2"}) {
		t.Errorf("auth.apiKeys = %q, want [k1 k2]", c.Auth.APIKeys)
	}
	if c.WebSocket.PingInterval != 3*time.Second {
		t.Errorf("websocket.pingInterval = %v", c.WebSocket.PingInterval)
	}
	if !slices.Equal(c.WebSocket.AllowedOrigins, []string{"https://a.example", "https://b.example:8443"}) {
		t.Errorf("websocket.allowedOrigins = %q", c.WebSocket.AllowedOrigins)
	}
	if c.Store.MaxPerUser != 5 || c.Store.TTL != 90*time.Minute || c.Store.Driver != "memory" {
		t.Errorf("store = %+v", c.Store)
	}
	if c.Auth.JWTSecret != "s3cret" || c.Redis.KeyPrefix != "other:" {
		t.Errorf("auth.jwtSecret = %q, redis.keyPrefix = %q", c.Auth.JWTSecret, c.Redis.KeyPrefix)
	}
	if c.WebSocket.MaxConnsPerUser != 0 || c.WebSocket.MaxMessageBytes != 1024 || c.Server.ShutdownTimeout != time.Minute {
		t.Errorf("websocket = %+v, server = %+v", c.WebSocket, c.Server)
	}
	// Everything else stays at its default.
	want := config.Default()
	want.Server.Addr = ":9090"
	want.Server.ShutdownTimeout = time.Minute
	want.Auth.APIKeys = []string{"k1", "k2"}
	want.Auth.JWTSecret = "s3cret"
	want.WebSocket.PingInterval = 3 * time.Second
	want.WebSocket.AllowedOrigins = []string{"https://a.example", "https://b.example:8443"}
	want.WebSocket.MaxConnsPerUser = 0
	want.WebSocket.MaxMessageBytes = 1024
	want.Store.MaxPerUser = 5
	want.Store.TTL = 90 * time.Minute
	want.Store.Driver = "memory"
	want.Redis.KeyPrefix = "other:"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("with env overrides:\n%+v\nwant\n%+v", c, want)
	}
}

// TestEnvNames: every key is looked up as PUSH_ + the key path upper-cased with "_" for ".".
func TestEnvNames(t *testing.T) {
	asked := map[string]bool{}
	getenv := func(name string) string {
		asked[name] = true
		return ""
	}
	t.Chdir(t.TempDir())
	mustLoad(t, "", getenv)
	for _, k := range config.Keys() {
		name := "PUSH_" + strings.ToUpper(strings.ReplaceAll(k, ".", "_"))
		if !asked[name] {
			t.Errorf("key %s: environment variable %s never consulted", k, name)
		}
	}
}

// TestEnvOverridesFile: the environment wins over the file, the file over the defaults.
func TestEnvOverridesFile(t *testing.T) {
	path := writeYAML(t,
		"server.addr", `":7000"`,
		"auth.apiKeys", `["fileKey"]`,
		"websocket.pingInterval", `5s`,
	)
	c := mustLoad(t, path, envMap(map[string]string{
		"PUSH_SERVER_ADDR":  ":7001",
		"PUSH_AUTH_APIKEYS": "envKey",
	})).Config
	if c.Server.Addr != ":7001" {
		t.Errorf("server.addr = %q, want the env value", c.Server.Addr)
	}
	if !slices.Equal(c.Auth.APIKeys, []string{"envKey"}) {
		t.Errorf("auth.apiKeys = %q, want the env value", c.Auth.APIKeys)
	}
	if c.WebSocket.PingInterval != 5*time.Second {
		t.Errorf("websocket.pingInterval = %v, want the file value", c.WebSocket.PingInterval)
	}
}

// TestPartialFileKeepsDefaults: keys absent from the file keep their defaults.
func TestPartialFileKeepsDefaults(t *testing.T) {
	path := writeYAML(t,
		"server.addr", `":9999"`,
		"websocket.sendQueue", `32`,
		"auth.apiKeys", `["a", "b"]`,
		"store.ttl", `1h`,
		"redis.db", `3`,
	)
	res := mustLoad(t, path, noEnv)
	if res.File != path {
		t.Errorf("File = %q, want %q", res.File, path)
	}
	want := config.Default()
	want.Server.Addr = ":9999"
	want.WebSocket.SendQueue = 32
	want.Auth.APIKeys = []string{"a", "b"}
	want.Store.TTL = time.Hour
	want.Redis.DB = 3
	if !reflect.DeepEqual(res.Config, want) {
		t.Errorf("partial file:\n%+v\nwant\n%+v", res.Config, want)
	}

	// A file with one section only, and an empty file.
	for _, content := range []string{"websocket:\n  maxConns: 7\n", "", "# only a comment\n"} {
		res := mustLoad(t, writeFile(t, content), noEnv)
		want := config.Default()
		if strings.Contains(content, "maxConns") {
			want.WebSocket.MaxConns = 7
		}
		if !reflect.DeepEqual(res.Config, want) {
			t.Errorf("file %q:\n%+v\nwant\n%+v", content, res.Config, want)
		}
	}
}

// TestUnknownKeyIsAnError: a key the server does not know (a typo, most likely) stops start-up
// naming it, with the closest known key as a hint.
func TestUnknownKeyIsAnError(t *testing.T) {
	cases := []struct{ file, key, hint string }{
		{"websocket:\n  pingIntervall: 5s\n", "websocket.pingintervall", "websocket.pingInterval"},
		{"websockets:\n  pingInterval: 1s\n", "websockets.pinginterval", "websocket.pingInterval"},
		{"server:\n  adress: \":1\"\n", "server.adress", "server.addr"},
		{"pingInterval: 1s\n", "pinginterval", "websocket.pingInterval"},
		{"store:\n  maxperuser: 5\n  ttll: 1h\n", "store.ttll", "store.ttl"},
		{"nothing:\n  likeIt: 1\n", "nothing.likeit", ""},
	}
	for _, tc := range cases {
		_, err := config.Load(writeFile(t, tc.file), noEnv)
		var ce *config.Error
		if !errors.As(err, &ce) {
			t.Errorf("file %q: error %v, want a *config.Error naming %s", tc.file, err, tc.key)
			continue
		}
		if ce.Key != tc.key {
			t.Errorf("file %q: Error.Key %q, want %q (%v)", tc.file, ce.Key, tc.key, err)
		}
		msg := err.Error()
		if hint := "did you mean " + tc.hint + "?"; tc.hint != "" && !strings.Contains(msg, hint) {
			t.Errorf("file %q: error %q lacks the hint %q", tc.file, msg, hint)
		}
		if tc.hint == "" && strings.Contains(msg, "did you mean") {
			t.Errorf("file %q: error %q hints at a key that is nothing like it", tc.file, msg)
		}
		if strings.ContainsAny(msg, "\r\n") {
			t.Errorf("error %q is not one line", msg)
		}
	}
	// Known keys in any letter case are not unknown (YAML keys are matched case-insensitively).
	if _, err := config.Load(writeFile(t, "store:\n  maxperuser: 5\n"), noEnv); err != nil {
		t.Errorf("a known key in lower case: %v", err)
	}
}

// TestSeveralBadValuesNameTheFirstInTableOrder: with several bad keys the error always names the
// same one, the first in the order of the configuration table.
func TestSeveralBadValuesNameTheFirstInTableOrder(t *testing.T) {
	path := writeYAML(t, "server.idleTimeout", "-1s", "server.readTimeout", "-1s",
		"server.readHeaderTimeout", "-1s", "server.shutdownTimeout", "-1s")
	for range 50 {
		_, err := config.Load(path, noEnv)
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Key != "server.shutdownTimeout" {
			t.Fatalf("error %v, want one naming server.shutdownTimeout (the first of the table)", err)
		}
	}
}

func TestBadValues(t *testing.T) {
	cases := []struct {
		name string
		file []string          // key/value pairs for a YAML file, or none
		env  map[string]string // environment overrides
		key  string            // the key the error must name
	}{
		{name: "bad duration in file", file: []string{"websocket.pingInterval", "soon"}, key: "websocket.pingInterval"},
		{name: "bad duration in env", env: map[string]string{"PUSH_WEBSOCKET_PINGINTERVAL": "abc"}, key: "websocket.pingInterval"},
		{name: "duration without unit", file: []string{"websocket.pingInterval", "10"}, key: "websocket.pingInterval"},
		{name: "zero ping interval", env: map[string]string{"PUSH_WEBSOCKET_PINGINTERVAL": "0s"}, key: "websocket.pingInterval"},
		{name: "pong wait not above ping", file: []string{"websocket.pongWait", "5s"}, key: "websocket.pongWait"},
		{name: "zero write wait", file: []string{"websocket.writeWait", "0s"}, key: "websocket.writeWait"},
		{name: "negative shutdown timeout", file: []string{"server.shutdownTimeout", "-1s"}, key: "server.shutdownTimeout"},
		{name: "bad shutdown timeout", env: map[string]string{"PUSH_SERVER_SHUTDOWNTIMEOUT": "ten seconds"}, key: "server.shutdownTimeout"},
		{name: "bad store ttl", file: []string{"store.ttl", "forever"}, key: "store.ttl"},
		{name: "zero store ttl", env: map[string]string{"PUSH_STORE_TTL": "0s"}, key: "store.ttl"},
		{name: "negative maxConnsPerUser", file: []string{"websocket.maxConnsPerUser", "-1"}, key: "websocket.maxConnsPerUser"},
		{name: "negative maxConns", env: map[string]string{"PUSH_WEBSOCKET_MAXCONNS": "-3"}, key: "websocket.maxConns"},
		{name: "negative sendQueue", file: []string{"websocket.sendQueue", "-5"}, key: "websocket.sendQueue"},
		{name: "zero sendQueue", env: map[string]string{"PUSH_WEBSOCKET_SENDQUEUE": "0"}, key: "websocket.sendQueue"},
		{name: "negative maxPerUser", file: []string{"store.maxPerUser", "-1"}, key: "store.maxPerUser"},
		{name: "unknown store sync", file: []string{"store.sync", "off"}, key: "store.sync"},
		{name: "upper-case store sync in env", env: map[string]string{"PUSH_STORE_SYNC": "FULL"}, key: "store.sync"},
		{name: "negative redis db", env: map[string]string{"PUSH_REDIS_DB": "-1"}, key: "redis.db"},
		{name: "non-numeric maxMessageBytes", env: map[string]string{"PUSH_WEBSOCKET_MAXMESSAGEBYTES": "lots"}, key: "websocket.maxMessageBytes"},
		{name: "fractional maxMessageBytes", file: []string{"websocket.maxMessageBytes", "1000.5"}, key: "websocket.maxMessageBytes"},
		{name: "unknown store driver", file: []string{"store.driver", "postgres"}, key: "store.driver"},
		{name: "unknown store driver in env", env: map[string]string{"PUSH_STORE_DRIVER": "mysql"}, key: "store.driver"},
		{name: "unknown broker driver", file: []string{"broker.driver", "kafka"}, key: "broker.driver"},
		{name: "redis broker with sqlite store", env: map[string]string{"PUSH_BROKER_DRIVER": "redis"}, key: "broker.driver"},
		{name: "redis broker with memory store", file: []string{"broker.driver", "redis", "store.driver", "memory"}, key: "broker.driver"},
		{name: "bad listen address", env: map[string]string{"PUSH_SERVER_ADDR": "nope"}, key: "server.addr"},
		{name: "bad origin", file: []string{"websocket.allowedOrigins", `["not an origin"]`}, key: "websocket.allowedOrigins"},
		{name: "api keys not a list", file: []string{"auth.apiKeys", "{a: 1}"}, key: "auth.apiKeys"},
		{name: "bad metrics address", env: map[string]string{"PUSH_SERVER_METRICSADDR": "9090"}, key: "server.metricsAddr"},
		{name: "allowed host with a scheme", file: []string{"server.allowedHosts", `["https://push.example.com"]`}, key: "server.allowedHosts"},
		{name: "allowed host with a port", env: map[string]string{"PUSH_SERVER_ALLOWEDHOSTS": "push.example.com:8080"}, key: "server.allowedHosts"},
		{name: "zero idempotency window", file: []string{"publish.idempotencyWindow", "0s"}, key: "publish.idempotencyWindow"},
		{name: "bad idempotency window", env: map[string]string{"PUSH_PUBLISH_IDEMPOTENCYWINDOW": "a day"}, key: "publish.idempotencyWindow"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != nil {
				path = writeYAML(t, tc.file...)
			} else {
				path = writeFile(t, "")
			}
			_, err := config.Load(path, envMap(tc.env))
			if err == nil {
				t.Fatalf("Load accepted the bad value; want an error naming %s", tc.key)
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *config.Error", err, err)
			}
			if ce.Key != tc.key {
				t.Errorf("Error.Key = %q, want %q", ce.Key, tc.key)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.key) {
				t.Errorf("error %q does not name the key %q as written in the table", msg, tc.key)
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error %q is not one line", msg)
			}
		})
	}
}

// TestValidValuesAccepted guards the other side of TestBadValues: edge values that are fine.
func TestValidValuesAccepted(t *testing.T) {
	cases := []map[string]string{
		{"PUSH_BROKER_DRIVER": "redis", "PUSH_STORE_DRIVER": "redis"},
		{"PUSH_WEBSOCKET_MAXCONNS": "0", "PUSH_WEBSOCKET_MAXCONNSPERUSER": "0"},
		{"PUSH_WEBSOCKET_ALLOWEDORIGINS": "*"},
		{"PUSH_SERVER_ADDR": "127.0.0.1:0"},
		{"PUSH_STORE_DRIVER": "memory", "PUSH_STORE_PATH": ""},
		{"PUSH_SERVER_METRICSADDR": "127.0.0.1:9090", "PUSH_SERVER_ALLOWEDHOSTS": "push.example.com,localhost"},
		{"PUSH_PUBLISH_IDEMPOTENCYWINDOW": "1h30m"},
	}
	for _, env := range cases {
		if _, err := config.Load(writeFile(t, ""), envMap(env)); err != nil {
			t.Errorf("env %v: %v", env, err)
		}
	}
}

func TestMissingExplicitFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "does-not-exist.yaml")
	_, err := config.Load(path, noEnv)
	if err == nil {
		t.Fatal("Load of a missing explicit file succeeded")
	}
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *config.Error", err, err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the path %q", err, path)
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("error %q is not one line", err)
	}
}

func TestMissingDefaultFileIsNotAnError(t *testing.T) {
	t.Chdir(t.TempDir())
	res, err := config.Load("", envMap(map[string]string{"PUSH_SERVER_ADDR": ":1234"}))
	if err != nil {
		t.Fatalf("Load without ./config.yaml: %v", err)
	}
	if res.Config.Server.Addr != ":1234" {
		t.Errorf("env override without a file: server.addr = %q", res.Config.Server.Addr)
	}
}

func TestMalformedFile(t *testing.T) {
	path := writeFile(t, "server:\n  addr: [unclosed\n  : :\n")
	_, err := config.Load(path, noEnv)
	if err == nil {
		t.Fatal("Load of malformed YAML succeeded")
	}
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *config.Error", err, err)
	}
	if !strings.Contains(err.Error(), path) || strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("error %q should name %q on one line", err, path)
	}
}
