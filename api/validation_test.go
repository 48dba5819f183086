package api

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"pushlane/config"
)

// TestPublishValidation sends every kind of bad body through HTTP: each is answered with the
// documented status and a JSON error, and none stores anything.
func TestPublishValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", func(c *config.Config) { c.WebSocket.MaxMessageBytes = 4096 })
	long := strings.Repeat("a", 129)
	bad := []struct {
		name, body string
	}{
		{"empty body", ``},
		{"whitespace only", " \n\t"},
		{"not json", `hello`},
		{"truncated", `{"userId":"u","data":1`},
		{"open brace", `{`},
		{"array", `[{"userId":"u","data":1}]`},
		{"string", `"u"`},
		{"null", `null`},
		{"number", `1`},
		{"trailing comma", `{"userId":"u","data":1,}`},
		{"single quotes", `{'userId':'u','data':1}`},
		{"trailing bytes", `{"userId":"u","data":1}x`},
		{"trailing object", `{"userId":"u","data":1}{}`},
		{"trailing comment", `{"userId":"u","data":1} // hi`},
		{"trailing NUL", "{\"userId\":\"u\",\"data\":1}\x00"},
		{"trailing vertical tab", "{\"userId\":\"u\",\"data\":1}\v"},
		{"trailing form feed", "{\"userId\":\"u\",\"data\":1}\f"},
		{"trailing NBSP", "{\"userId\":\"u\",\"data\":1}\u00a0"},
		{"two objects on lines", "{\"userId\":\"u\",\"data\":1}\n{\"userId\":\"u\",\"data\":2}"},
		{"unknown field", `{"userId":"u","data":1,"extra":true}`},
		{"TTL upper case", `{"userId":"u","data":1,"TTL":"1h"}`},
		{"Ttl", `{"userId":"u","data":1,"Ttl":"1h"}`},
		{"UserId", `{"UserId":"u","data":1}`},
		{"userid", `{"userid":"u","data":1}`},
		{"USERIDS", `{"USERIDS":["u"],"data":1}`},
		{"Data", `{"userId":"u","Data":1}`},
		{"data and Data", `{"userId":"u","data":1,"Data":2}`},
		{"duplicate userId", `{"userId":"u","userId":"v","data":1}`},
		{"duplicate data", `{"userId":"u","data":1,"data":2}`},
		{"data missing", `{"userId":"u"}`},
		{"data null", `{"userId":"u","data":null}`},
		{"data null spaced", `{"userId":"u","data": null }`},
		{"ttl number", `{"userId":"u","data":1,"ttl":60}`},
		{"ttl null", `{"userId":"u","data":1,"ttl":null}`},
		{"ttl 0s", `{"userId":"u","data":1,"ttl":"0s"}`},
		{"ttl 0", `{"userId":"u","data":1,"ttl":"0"}`},
		{"ttl negative", `{"userId":"u","data":1,"ttl":"-5m"}`},
		{"ttl soon", `{"userId":"u","data":1,"ttl":"soon"}`},
		{"ttl empty", `{"userId":"u","data":1,"ttl":""}`},
		{"ttl no unit", `{"userId":"u","data":1,"ttl":"60"}`},
		{"ttl days", `{"userId":"u","data":1,"ttl":"1d"}`},
		{"ttl object", `{"userId":"u","data":1,"ttl":{"h":1}}`},
		{"ttl overflow", `{"userId":"u","data":1,"ttl":"9999999999999h"}`},
		{"no user", `{"data":1}`},
		{"both userId and userIds", `{"userId":"u","userIds":["v"],"data":1}`},
		{"userId empty", `{"userId":"","data":1}`},
		{"userId space", `{"userId":"a b","data":1}`},
		{"userId slash", `{"userId":"a/b","data":1}`},
		{"userId hash", `{"userId":"a#b","data":1}`},
		{"userId plus", `{"userId":"a+b","data":1}`},
		{"userId unicode", `{"userId":"é","data":1}`},
		{"userId escaped NUL", `{"userId":"a\u0000","data":1}`},
		{"userId 129 bytes", `{"userId":"` + long + `","data":1}`},
		{"userId number", `{"userId":123,"data":1}`},
		{"userId null", `{"userId":null,"data":1}`},
		{"userId list", `{"userId":["u"],"data":1}`},
		{"userIds empty", `{"userIds":[],"data":1}`},
		{"userIds null", `{"userIds":null,"data":1}`},
		{"userIds string", `{"userIds":"u","data":1}`},
		{"userIds object", `{"userIds":{"u":1},"data":1}`},
		{"userIds number item", `{"userIds":["u",1],"data":1}`},
		{"userIds null item", `{"userIds":["u",null],"data":1}`},
		{"userIds bad item", `{"userIds":["u","bad id"],"data":1}`},
		{"userIds empty item", `{"userIds":["u",""],"data":1}`},
		{"userIds long item", `{"userIds":["` + long + `"],"data":1}`},
		{"userIds nested", `{"userIds":[["u"]],"data":1}`},
		{"invalid UTF-8 in data", "{\"userId\":\"u\",\"data\":\"\xff\xfe\"}"},
		{"invalid UTF-8 in a key", "{\"userId\":\"u\",\"data\":{\"\xc3\":1}}"},
	}
	before := committed(e)
	for _, tc := range bad {
		status, b, h, err := e.do(http.MethodPost, "/pushNews", []byte(tc.body), nil)
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusBadRequest {
			t.Errorf("%s: %q answered %d, want 400 (%s)", tc.name, tc.body, status, b)
			continue
		}
		if err := errorBodyOK(b, h); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}

	// Over websocket.maxMessageBytes: 413, with and without a Content-Length.
	big := `{"userId":"u","data":"` + strings.Repeat("x", 4096) + `"}`
	status, b, h, err := e.do(http.MethodPost, "/pushNews", []byte(big), nil)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusRequestEntityTooLarge {
		t.Errorf("body over maxMessageBytes: %d, want 413 (%s)", status, b)
	} else if err := errorBodyOK(b, h); err != nil {
		t.Error(err)
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/pushNews", io.MultiReader(strings.NewReader(big))) // no length: chunked
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over maxMessageBytes: %d, want 413 (%s)", resp.StatusCode, b)
	} else if err := errorBodyOK(b, resp.Header); err != nil {
		t.Error(err)
	}
	// /broadcast shares the limit.
	status, b = e.request(http.MethodPost, "/broadcast", []byte(`{"data":"`+strings.Repeat("x", 4096)+`"}`))
	if status != http.StatusRequestEntityTooLarge {
		t.Errorf("broadcast over maxMessageBytes: %d, want 413 (%s)", status, b)
	}

	if after := committed(e); after != before {
		t.Fatalf("refused publishes stored messages: %d committed before, %d after", before, after)
	}

	// The edges on the good side are accepted.
	ok := []struct {
		name, body string
	}{
		{"trailing whitespace", "{\"userId\":\"u\",\"data\":1} \t\r\n"},
		{"leading whitespace", " \r\n\t{\"userId\":\"u\",\"data\":1}"},
		{"whitespace inside", "{ \"userId\" :\n\"u\" ,\t\"data\" : [ 1 , 2 ] }"},
		{"every userId byte", `{"userId":"AZaz09._:@-","data":1}`},
		{"userId 128 bytes", `{"userId":"` + long[:128] + `","data":1}`},
		{"escaped userId", `{"userId":"\u0075","data":1}`},
		{"ttl 90s", `{"userId":"u","data":1,"ttl":"90s"}`},
		{"ttl 24h", `{"userId":"u","data":1,"ttl":"24h"}`},
		{"ttl 1h30m", `{"userId":"u","data":1,"ttl":"1h30m"}`},
		{"data false", `{"userId":"u","data":false}`},
		{"data 0", `{"userId":"u","data":0}`},
		{"data empty string", `{"userId":"u","data":""}`},
		{"data string null", `{"userId":"u","data":"null"}`},
		{"data object with null", `{"userId":"u","data":{"a":null}}`},
		{"field order", `{"ttl":"1m","data":1,"userIds":["u","v"]}`},
		{"body at the limit", `{"userId":"u","data":"` + strings.Repeat("x", 4096-len(`{"userId":"u","data":""}`)) + `"}`},
	}
	for _, tc := range ok {
		status, b := e.request(http.MethodPost, "/pushNews", []byte(tc.body))
		if status != http.StatusOK {
			t.Errorf("%s: %q answered %d, want 200 (%s)", tc.name, tc.body, status, b)
		}
	}
}

// TestBroadcastValidation: /broadcast follows the publish rules and accepts only data.
func TestBroadcastValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory", nil)
	for _, body := range []string{``, `{}`, `{"data":null}`, `{"data":1,"userId":"u"}`, `{"data":1,"ttl":"1h"}`,
		`{"Data":1}`, `{"data":1}x`, `{"data":1,"data":2}`, `[1]`, `{"data":1,}`, "{\"data\":\"\xff\"}"} {
		status, b, h, err := e.do(http.MethodPost, "/broadcast", []byte(body), nil)
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusBadRequest {
			t.Errorf("broadcast %q: %d, want 400 (%s)", body, status, b)
			continue
		}
		if err := errorBodyOK(b, h); err != nil {
			t.Error(err)
		}
	}
	for _, body := range []string{`{"data":1}`, "{\"data\":[]} \n", `{"data":false}`} {
		if status, b := e.request(http.MethodPost, "/broadcast", []byte(body)); status != http.StatusOK {
			t.Errorf("broadcast %q: %d, want 200 (%s)", body, status, b)
		}
	}
}

// TestSubscribeValidation: bad userId or since is refused before the upgrade with 400 and a JSON
// error; the good edges are accepted; a plain GET is 400 JSON.
func TestSubscribeValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", nil)
	long := strings.Repeat("a", 129)
	for _, q := range []string{
		``,
		`since=0`,
		`userId=`,
		`userid=u`,
		`userId=a%20b`,
		`userId=a/b`,
		`userId=%C3%A9`,
		`userId=a%00`,
		`userId=` + long,
		`userId=u&since=`,
		`userId=u&since=-1`,
		`userId=u&since=%2B1`,
		`userId=u&since=+1`,
		`userId=u&since=01`,
		`userId=u&since=00`,
		`userId=u&since=-0`,
		`userId=u&since=1.0`,
		`userId=u&since=1e3`,
		`userId=u&since=0x1`,
		`userId=u&since=abc`,
		`userId=u&since=%201`,
		`userId=u&since=1%20`,
		`userId=u&since=1%00`,
		`userId=u&since=9223372036854775808`,
		`userId=u&since=18446744073709551615`,
		`userId=u&since=18446744073709551616`,
		`userId=u&since=99999999999999999999`,
		`userId=u&since=00000000000000000001`,
		`userId=u&since=%zz`,
	} {
		requireRefused(t, e, q, http.StatusBadRequest)
	}
	for _, q := range []string{`userId=` + long[:128], `userId=AZaz09._:@-`, `userId=u&since=0`, `userId=u&since=1`,
		`userId=u&since=9223372036854775807`, `userId=u&since=%31%32`, `userId=u&token=ignored`} {
		conn, resp, err := e.dialE(q, nil)
		if err != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Errorf("subscribe %q refused (%d): %v", q, status, err)
			continue
		}
		conn.Close()
	}

	// Not a WebSocket upgrade: 400 JSON, also for a valid query.
	for _, q := range []string{`userId=u`, `userId=u&since=5`, ``} {
		status, b, h, err := e.do(http.MethodGet, "/getPushNews?"+q, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusBadRequest {
			t.Errorf("plain GET ?%s: %d, want 400 (%s)", q, status, b)
			continue
		}
		if err := errorBodyOK(b, h); err != nil {
			t.Errorf("plain GET ?%s: %v", q, err)
		}
	}
}
