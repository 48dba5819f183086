package api

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"pushlane/config"
)

// healthAnswer GETs (or HEADs) /healthz with the given API key ("" for none).
func (e *env) healthAnswer(method, key string) (int, []byte) {
	e.t.Helper()
	h := http.Header{}
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	status, b, _, err := e.do(method, "/healthz", nil, h)
	if err != nil {
		e.t.Fatal(err)
	}
	return status, b
}

func decodeHealth(t *testing.T, b []byte) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("healthz body %q: %v", b, err)
	}
	return m
}

// TestHealthzSemantics: GET and HEAD /healthz answer 200 while the store takes writes and 503
// once it cannot; without the API key (when keys are set), and for everyone when keys are off,
// the failing part reads "unavailable" and nothing more; with the key it says why, on one line.
func TestHealthzSemantics(t *testing.T) {
	forEachStore(t, func(t *testing.T, driver string) {
		const key = "health-key"
		for _, keys := range [][]string{nil, {"other", key}} {
			e := newEnv(t, driver, func(c *config.Config) { c.Auth.APIKeys = keys })
			ok := map[string]string{"status": "ok", "store": "ok", "broker": "ok"}
			if status, b := e.healthAnswer(http.MethodGet, ""); status != http.StatusOK || !reflect.DeepEqual(decodeHealth(t, b), ok) {
				t.Fatalf("healthy GET /healthz: %d %s, want 200 %v", status, b, ok)
			}
			if status, b := e.healthAnswer(http.MethodHead, ""); status != http.StatusOK || len(b) != 0 {
				t.Fatalf("healthy HEAD /healthz: %d %q, want 200 without a body", status, b)
			}

			if err := e.store.Close(); err != nil {
				t.Fatal(err)
			}
			short := map[string]string{"status": "unavailable", "store": "unavailable", "broker": "ok"}
			for _, k := range []string{"", "wrong-key"} {
				status, b := e.healthAnswer(http.MethodGet, k)
				if status != http.StatusServiceUnavailable || !reflect.DeepEqual(decodeHealth(t, b), short) {
					t.Fatalf("keys %v, key %q: GET /healthz with the store closed: %d %s, want 503 %v", keys, k, status, b, short)
				}
			}
			if status, b := e.healthAnswer(http.MethodHead, ""); status != http.StatusServiceUnavailable || len(b) != 0 {
				t.Fatalf("HEAD /healthz with the store closed: %d %q, want 503 without a body", status, b)
			}
			if keys == nil {
				continue
			}
			status, b := e.healthAnswer(http.MethodGet, key)
			m := decodeHealth(t, b)
			if status != http.StatusServiceUnavailable || m["status"] != "unavailable" || m["broker"] != "ok" {
				t.Fatalf("GET /healthz with the key: %d %s", status, b)
			}
			if s := m["store"]; s == "ok" || s == "unavailable" || s == "" || strings.ContainsAny(s, "\r\n") {
				t.Fatalf("GET /healthz with the key: store %q, want the cause on one line", s)
			}
		}
	})
}

// TestPublicErrorsAreFixedTexts: a 503 says one fixed line, whatever the cause (no error chain,
// no file path, no newline); error bodies are not HTML-escaped.
func TestPublicErrorsAreFixedTexts(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, "sqlite", func(c *config.Config) {
		c.Store.Path = dir + "/push.db"
		c.Auth.APIKeys = []string{"k"}
	})
	auth := http.Header{"Authorization": {"Bearer k"}}

	status, b, _, err := e.do(http.MethodPost, "/pushNews", []byte(`{"userId":"u","data":1}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusUnauthorized || !bytes.Contains(b, []byte("Bearer <key>")) {
		t.Fatalf("publish without the key: %d %s, want 401 saying Bearer <key> as is", status, b)
	}

	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, req := range []struct {
		method, path string
		body         []byte
	}{
		{http.MethodPost, "/pushNews", []byte(`{"userId":"u","data":1}`)},
		{http.MethodGet, "/clients/u", nil},
		{http.MethodDelete, "/deleteClient/u?purge=true", nil},
	} {
		status, b, h, err := e.do(req.method, req.path, req.body, auth)
		if err != nil {
			t.Fatal(err)
		}
		if err := errorBodyOK(b, h); err != nil {
			t.Fatal(err)
		}
		var body errorBody
		_ = json.Unmarshal(b, &body)
		if status != http.StatusServiceUnavailable || body.Error != errUnavailable.msg {
			t.Errorf("%s %s with the store closed: %d %q, want 503 %q", req.method, req.path, status, body.Error, errUnavailable.msg)
		}
		if bytes.Contains(b, []byte(dir)) || bytes.Contains(b, []byte(`\n`)) {
			t.Errorf("%s %s: body %s leaks internal detail", req.method, req.path, b)
		}
	}
}

// TestPublicErrorsAreDocumented: every fixed public error is listed for operators.
func TestPublicErrorsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/operating.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range publicErrors {
		row := regexp.MustCompile(`(?m)^\|\s*` + strconv.Itoa(e.status) + " " + regexp.QuoteMeta(http.StatusText(e.status)) +
			`\s*\|\s*` + "`" + regexp.QuoteMeta(e.msg) + "`" + `\s*\|\s*$`)
		if !row.Match(doc) {
			t.Errorf("docs/operating.md has no table row for %d `%s`", e.status, e.msg)
		}
	}
}

// TestMetricsNeedTheAPIKey: with auth.apiKeys set, GET /metrics is 401 without a key.
func TestMetricsNeedTheAPIKey(t *testing.T) {
	e := newEnv(t, "memory", func(c *config.Config) { c.Auth.APIKeys = []string{"metrics-key"} })
	status, b, _, err := e.do(http.MethodGet, "/metrics", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusUnauthorized || bytes.Contains(b, []byte("pushlane_")) {
		t.Fatalf("GET /metrics without the key: %d %.100s, want 401", status, b)
	}
	status, b, _, err = e.do(http.MethodGet, "/metrics", nil, http.Header{"Authorization": {"Bearer metrics-key"}})
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK || !bytes.Contains(b, []byte("pushlane_connections ")) {
		t.Fatalf("GET /metrics with the key: %d %.200s", status, b)
	}
}

var milliRFC3339 = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// TestConnectedAtHasMilliseconds: GET /clients/:id writes connectedAt like every timestamp of the
// API, RFC 3339 with milliseconds in UTC.
func TestConnectedAtHasMilliseconds(t *testing.T) {
	e := newEnv(t, "memory", nil)
	e.dial("when", -1)
	e.waitConns("when", 1)
	var d clientDetail
	e.getJSON("/clients/when", http.StatusOK, &d)
	if len(d.Connections) != 1 || !milliRFC3339.MatchString(d.Connections[0].ConnectedAt) {
		t.Fatalf("connections %+v: connectedAt is not RFC 3339 with milliseconds in UTC", d.Connections)
	}
}

// TestBadUserIDMessages: a bad userId is a 400 that says what is wrong once ("userId: must be
// ..."), and "." and ".." are refused everywhere: no route could reach such a user by path.
func TestBadUserIDMessages(t *testing.T) {
	e := newEnv(t, "memory", nil)
	before := committed(e)
	check := func(what string, status int, b []byte, mention string) {
		t.Helper()
		var body errorBody
		if status != http.StatusBadRequest || json.Unmarshal(b, &body) != nil {
			t.Errorf("%s: %d %s, want 400", what, status, b)
			return
		}
		if !strings.Contains(body.Error, mention) || strings.Contains(body.Error, "userId: userId") {
			t.Errorf("%s: error %q, want one that names %q once", what, body.Error, mention)
		}
	}
	for _, id := range []string{".", "..", "a b", ""} {
		body, _ := json.Marshal(map[string]any{"userId": id, "data": 1})
		status, b := e.request(http.MethodPost, "/pushNews", body)
		check("publish to "+strconv.Quote(id), status, b, "userId")
	}
	status, b := e.request(http.MethodPost, "/pushNews", []byte(`{"userIds":["fine",".."],"data":1}`))
	check("publish to userIds [fine ..]", status, b, "userIds[1]")
	if got := committed(e); got != before {
		t.Fatalf("a refused publish was stored: %d messages committed, %d before", got, before)
	}
	for _, id := range []string{".", ".."} {
		conn, resp, err := e.dialE("userId="+id, nil)
		if err == nil {
			conn.Close()
			t.Fatalf("subscribe as %q: accepted", id)
		}
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("subscribe as %q: %v, want 400", id, err)
		}
	}
	status, b = e.request(http.MethodGet, "/clients/a%20b", nil)
	check("GET /clients/a%20b", status, b, "userId")
	// Dots are fine inside a name.
	e.publish("...", 1)
	e.publish("a.b", 1)
}

// TestHealthzWhileAnotherProcessHoldsTheWriteLock: a SQLite file whose write lock another
// connection holds (as another process would, with BEGIN IMMEDIATE) takes no publish, so
// /healthz answers 503 (within healthTimeout, logged), and 200 again once the lock is released.
func TestHealthzWhileAnotherProcessHoldsTheWriteLock(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	e.publish("locked", 1) // the file exists and has been written
	db, err := sql.Open("sqlite", e.cfg.Store.Path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	status, b := e.healthAnswer(http.MethodGet, "")
	if status != http.StatusServiceUnavailable || decodeHealth(t, b)["store"] != "unavailable" {
		t.Fatalf("GET /healthz while the write lock is held: %d %s, want 503 store unavailable", status, b)
	}
	t.Logf("GET /healthz answered 503 in %v (bounded by %v; the store would wait out its 10s busy timeout)", time.Since(start), healthTimeout)
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "GET /healthz 200 after the lock is released", func() bool {
		status, _ := e.healthAnswer(http.MethodGet, "")
		return status == http.StatusOK
	})
}
