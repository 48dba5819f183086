package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestRoundTripData publishes every kind of JSON value and requires the frame to carry it
// unchanged (equal after JSON decoding) with the documented frame and response shapes.
func TestRoundTripData(t *testing.T) {
	forEachStore(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		c := e.dial("rt-user", -1)
		e.waitConns("rt-user", 1)

		values := []string{
			`{"title":"hi","nested":{"a":[1,2,{"b":null}],"t":true}}`,
			`[1,"two",3.5,false,null,{"x":[]}]`,
			`"just a string"`,
			`""`,
			`42`,
			`-17`,
			`1.5e-7`,
			`12345678901234567`,
			`0`,
			`true`,
			`false`,
			`{}`,
			`[]`,
			`"unicode: héllo wörld 日本語 😀 \u2028 \u2029 line"`,
			"\"raw separators: \u2028 and \u2029\"",
			`"escapes: \" \\ \/ \b \f \n \r \t \u0000 <script>&amp;"`,
			"{ \"spaced\" : [ 1 , 2 ] ,\n\t\"k\" : \"v\" }",
		}
		for _, v := range values {
			body := []byte(`{"userId":"rt-user","data":` + v + `}`)
			resp, err := e.publishE(body)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Results) != 1 {
				t.Fatalf("data %s: results %+v, want one", v, resp.Results)
			}
			r := resp.Results[0]
			if r.UserID != "rt-user" || !r.Online {
				t.Fatalf("data %s: result %+v, want userId rt-user online", v, r)
			}
			id, err := parseID(r.ID)
			if err != nil {
				t.Fatal(err)
			}
			f := c.readMessage()
			if f.id() != id {
				t.Fatalf("data %s: frame id %d, want %d", v, f.id(), id)
			}
			if !jsonEqual(t, f.fields["data"], []byte(v)) {
				t.Fatalf("data %s arrived as %s", v, f.fields["data"])
			}
		}
	})
}

// jsonEqual compares two JSON texts after decoding.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

// TestPublishResponseShape checks the exact response body: {"results":[{"userId","id","online"}]}.
func TestPublishResponseShape(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", nil)
	status, b := e.request(http.MethodPost, "/pushNews", []byte(`{"userId":"shape","data":1}`))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, b)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || len(top) != 1 || top["results"] == nil {
		t.Fatalf(`body %s, want exactly {"results": [...]}`, b)
	}
	var results []map[string]json.RawMessage
	if err := json.Unmarshal(top["results"], &results); err != nil || len(results) != 1 {
		t.Fatalf("results %s, want one object", top["results"])
	}
	r := results[0]
	if len(r) != 3 || string(r["userId"]) != `"shape"` || string(r["online"]) != "false" {
		t.Fatalf(`result %s, want {"userId":"shape","id":"<id>","online":false}`, top["results"])
	}
	var id string
	if err := json.Unmarshal(r["id"], &id); err != nil {
		t.Fatalf("id %s is not a JSON string", r["id"])
	}
	if _, err := parseID(id); err != nil {
		t.Fatal(err)
	}
}

// TestEveryConnectionOfAUserReceives: tabs and devices of one user all get every message;
// another user gets nothing of it.
func TestEveryConnectionOfAUserReceives(t *testing.T) {
	forEachStore(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		const tabs = 4
		var conns []*client
		for range tabs {
			conns = append(conns, e.dial("multi", -1))
		}
		other := e.dial("other", -1)
		e.waitConns("multi", tabs)
		e.waitConns("other", 1)

		var want []uint64
		for i := range 5 {
			want = append(want, e.publish("multi", map[string]int{"n": i}))
		}
		for i, c := range conns {
			requireIncreasingExactly(t, fmt.Sprintf("tab %d", i), c.readIDs(len(want)), want)
		}
		// The other user's next frame is its own message, not one of multi's.
		mine := e.publish("other", "mine")
		if f := other.readMessage(); f.id() != mine {
			t.Fatalf("other user got %s, want its own message %d", f.raw, mine)
		}
	})
}

// TestBatchPublish: userIds with duplicates gives one message and one result per distinct user,
// in first-seen order, each id valid, online per user.
func TestBatchPublish(t *testing.T) {
	forEachStore(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		a := e.dial("batch-a", -1)
		e.waitConns("batch-a", 1)
		body := []byte(`{"userIds":["batch-a","batch-b","batch-a","batch-c","batch-b","batch-a"],"data":{"x":1},"ttl":"1h"}`)
		resp, err := e.publishE(body)
		if err != nil {
			t.Fatal(err)
		}
		wantUsers := []string{"batch-a", "batch-b", "batch-c"}
		if len(resp.Results) != len(wantUsers) {
			t.Fatalf("results %+v, want one per distinct user %v", resp.Results, wantUsers)
		}
		seen := map[string]bool{}
		ids := map[string]uint64{}
		for i, r := range resp.Results {
			if r.UserID != wantUsers[i] {
				t.Fatalf("result %d is for %q, want %q (results %+v)", i, r.UserID, wantUsers[i], resp.Results)
			}
			if seen[r.ID] {
				t.Fatalf("id %s given twice: %+v", r.ID, resp.Results)
			}
			seen[r.ID] = true
			id, err := parseID(r.ID)
			if err != nil {
				t.Fatal(err)
			}
			ids[r.UserID] = id
			if r.Online != (r.UserID == "batch-a") {
				t.Fatalf("result %+v: online wrong (only batch-a is connected)", r)
			}
		}
		// batch-a gets exactly one frame for the batch: the next frame is a later message.
		if f := a.readMessage(); f.id() != ids["batch-a"] || !jsonEqual(t, f.fields["data"], []byte(`{"x":1}`)) {
			t.Fatalf("batch-a got %s, want id %d", f.raw, ids["batch-a"])
		}
		next := e.publish("batch-a", "after")
		if f := a.readMessage(); f.id() != next {
			t.Fatalf("batch-a got %s after the batch, want the next message %d (a duplicate?)", f.raw, next)
		}
		// batch-b and batch-c have it stored: since=0 replays exactly that one message.
		for _, u := range []string{"batch-b", "batch-c"} {
			c := e.dial(u, 0)
			if f := c.readMessage(); f.id() != ids[u] {
				t.Fatalf("%s replayed %s, want id %d", u, f.raw, ids[u])
			}
		}
	})
}

// TestBatchLimit: 1000 distinct ids are accepted, 1001 are refused with 400 and store nothing.
func TestBatchLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", nil)
	ids := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`"bl-%04d"`, i)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	resp, err := e.publishE([]byte(`{"userIds":` + ids(1000) + `,"data":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1000 {
		t.Fatalf("%d results, want 1000", len(resp.Results))
	}
	for i, r := range resp.Results {
		if want := fmt.Sprintf("bl-%04d", i); r.UserID != want {
			t.Fatalf("result %d for %q, want %q", i, r.UserID, want)
		}
	}
	before := committed(e)
	status, b, h, err := e.do(http.MethodPost, "/pushNews", []byte(`{"userIds":`+ids(1001)+`,"data":"x"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusBadRequest {
		t.Fatalf("1001 ids: status %d, want 400 (%s)", status, b)
	}
	if err := errorBodyOK(b, h); err != nil {
		t.Fatal(err)
	}
	if after := committed(e); after != before {
		t.Fatalf("a refused publish stored messages: %d committed before, %d after", before, after)
	}
}
