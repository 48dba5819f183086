package api

import (
	"bytes"
	"encoding/json"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"pushlane/module"
)

// publishSeeds are valid and invalid POST /pushNews bodies; testdata/fuzz/FuzzParsePublish holds
// more, in the go test fuzz corpus format.
var publishSeeds = []string{
	`{"userId":"u1","data":{"title":"hi"}}`,
	`{"userIds":["u1","u2","u1"],"data":"any JSON value","ttl":"24h"}`,
	`{"userId":"u","data":[1,2.5e-7,"x",true,null]}`,
	"{\"userId\":\"u\",\"data\":1} \t\r\n",
	`{"userId":"u","data":null}`,
	`{"userId":"u","data":1,"TTL":"1h"}`,
	`{"userId":"u","data":1,"ttl":60}`,
	`{"userId":"u","data":1,"ttl":"-5m"}`,
	`{"userId":"u","data":1}x`,
	`{"userId":"u","userId":"v","data":1}`,
	`{"userIds":[],"data":1}`,
	`{"userId":"a b","data":1}`,
	"{\"userId\":\"u\",\"data\":\"\xff\"}",
	`[`,
	``,
}

// FuzzParsePublish: ParsePublish never panics, and whatever it accepts is what API.md allows:
// 1 to 1000 valid, distinct user ids; data valid compact UTF-8 JSON, not null, equal to the body's
// data; ttl zero (default) or the body's positive duration; no field beyond the four known ones.
func FuzzParsePublish(f *testing.F) {
	for _, s := range publishSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParsePublish(body)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if n := len(req.UserIDs); n < 1 || n > MaxBatchUsers {
			t.Fatalf("accepted %d user ids", n)
		}
		seen := map[string]bool{}
		for _, id := range req.UserIDs {
			if !module.ValidUserID(id) {
				t.Fatalf("accepted invalid userId %q", id)
			}
			if seen[id] {
				t.Fatalf("userId %q twice in %q", id, req.UserIDs)
			}
			seen[id] = true
		}
		if !json.Valid(req.Data) || !utf8.Valid(req.Data) {
			t.Fatalf("accepted data %q that is not valid UTF-8 JSON", req.Data)
		}
		if string(req.Data) == "null" {
			t.Fatal("accepted null data")
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, req.Data); err != nil || !bytes.Equal(compact.Bytes(), req.Data) {
			t.Fatalf("data %q is not compact", req.Data)
		}
		if req.TTL < 0 {
			t.Fatalf("negative ttl %v", req.TTL)
		}

		// Cross-check against the body itself.
		if !utf8.Valid(body) {
			t.Fatalf("accepted a body that is not UTF-8: %q", body)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			t.Fatalf("accepted a body that is not one JSON object: %q: %v", body, err)
		}
		for k := range fields {
			switch k {
			case "userId", "userIds", "data", "ttl":
			default:
				t.Fatalf("accepted unknown field %q", k)
			}
		}
		_, one := fields["userId"]
		_, many := fields["userIds"]
		if one == many {
			t.Fatalf("accepted a body with userId %v and userIds %v", one, many)
		}
		if !jsonSame(fields["data"], req.Data) {
			t.Fatalf("data %q differs from the body's %q", req.Data, fields["data"])
		}
		if raw, ok := fields["ttl"]; ok {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatalf("accepted ttl %s that is not a string", raw)
			}
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 || d != req.TTL {
				t.Fatalf("ttl %q gave %v", s, req.TTL)
			}
		} else if req.TTL != 0 {
			t.Fatalf("ttl %v without a ttl field", req.TTL)
		}
	})
}

// jsonSame compares two JSON texts after decoding (numbers as written).
func jsonSame(a, b []byte) bool {
	decode := func(b []byte) (any, error) {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		err := d.Decode(&v)
		return v, err
	}
	x, err1 := decode(a)
	y, err2 := decode(b)
	if err1 != nil || err2 != nil {
		return false
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}

var (
	userIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)
	sincePattern  = regexp.MustCompile(`^(0|[1-9][0-9]{0,18})$`)
	epochPattern  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// FuzzParseSubscribeQuery: ParseSubscribeQuery never panics; it accepts exactly the queries
// API.md allows (one valid userId; since absent, or once and "0" or a canonical id up to
// 2^63-1), and an accepted since is the number written in the query.
func FuzzParseSubscribeQuery(f *testing.F) {
	for _, s := range []string{
		"userId=u1", "userId=u1&since=0", "userId=u1&since=42", "userId=u1&since=9223372036854775807",
		"userId=u1&since=9223372036854775808", "userId=u1&since=", "userId=u1&since=01", "userId=u1&since=-1",
		"userId=u1&since=%2B1", "userId=a%20b", "userId=u&userId=v", "since=1", "userId=u1&since=1&since=2",
		"userId=u1&token=abc", "userId=%zz", "userId=u1;since=3", "", "userId=.", "userId=..",
		"userId=u1&v=2", "userId=u1&v=3", "userId=u1&v=2&epoch=abc_-1", "userId=u1&v=2&epoch=a%2Bb", "userId=u1&epoch=x&epoch=y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		values, _ := url.ParseQuery(raw)
		q, problem := ParseSubscribeQuery(values)

		ids := values["userId"]
		sinces, hasSince := values["since"]
		vs, hasV := values["v"]
		epochs, hasEpoch := values["epoch"]
		want := len(ids) == 1 && userIDPattern.MatchString(ids[0]) && ids[0] != "." && ids[0] != ".." &&
			(!hasSince || (len(sinces) == 1 && canonicalSince(sinces[0]))) &&
			(!hasV || (len(vs) == 1 && (vs[0] == "1" || vs[0] == "2"))) &&
			(!hasEpoch || (len(epochs) == 1 && epochPattern.MatchString(epochs[0])))
		if (problem == "") != want {
			t.Fatalf("query %q (%v): accepted %v (%q), want accepted %v", raw, values, problem == "", problem, want)
		}
		if problem != "" {
			return
		}
		if !module.ValidUserID(q.UserID) || q.UserID != ids[0] {
			t.Fatalf("accepted userId %q from %q", q.UserID, ids)
		}
		if (q.Since != nil) != hasSince {
			t.Fatalf("since %v from %q", q.Since, sinces)
		}
		if q.Since != nil {
			if s := strconv.FormatUint(*q.Since, 10); s != sinces[0] || *q.Since > math.MaxInt64 {
				t.Fatalf("since %q parsed as %d", sinces[0], *q.Since)
			}
		}
		if v2 := hasV && vs[0] == "2"; (q.Version == 2) != v2 || (q.Version != 1 && q.Version != 2) {
			t.Fatalf("version %d from v=%q", q.Version, vs)
		}
		if wantEpoch := q.Version == 2 && hasEpoch; (q.Epoch != "") != wantEpoch || (wantEpoch && q.Epoch != epochs[0]) {
			t.Fatalf("epoch %q from %q (version %d)", q.Epoch, epochs, q.Version)
		}
	})
}

func canonicalSince(s string) bool {
	if !sincePattern.MatchString(s) {
		return false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return err == nil && n <= math.MaxInt64
}
