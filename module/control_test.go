package module

import (
	"strconv"
	"testing"
)

// FuzzParseControl: the compact acknowledgement read without the JSON decoder means exactly what
// the decoder makes of the same bytes, for any input.
func FuzzParseControl(f *testing.F) {
	for _, s := range []string{`{"type":"ack","id":"42"}`, `{"type":"ack","id":"0"}`, `{"type":"ack","id":"042"}`,
		`{"type":"ack","id":""}`, `{"type":"ack","id":"9223372036854775808"}`, `{"type":"ack","id":"4\u0032"}`,
		`{"type":"ack","id":"1","id":"2"}`, `{"type":"ack","id":"1"} `, `{"type":"ping"}`, `{"type": "ack", "id": "7"}`,
		`{"type":"ack","id":"1"}}`, `{"type":"ack","id":"1""}`, `{"type":"ack","id":"1\"}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, id := parseControl(b)
		wantKind, wantID := decodeControl(b)
		if kind != wantKind || id != wantID {
			t.Fatalf("parseControl(%q) = %q, %d; the JSON decoder reads %q, %d", b, kind, id, wantKind, wantID)
		}
	})
}

// BenchmarkParseControl: an acknowledgement as clients write it, read on the fast path and by the
// JSON decoder.
func BenchmarkParseControl(b *testing.B) {
	msg := []byte(`{"type":"ack","id":"` + strconv.Itoa(123456789) + `"}`)
	for _, bc := range []struct {
		name  string
		parse func([]byte) (string, uint64)
	}{{"compact", parseControl}, {"decoder", decodeControl}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if kind, id := bc.parse(msg); kind != "ack" || id != 123456789 {
					b.Fatal(kind, id)
				}
			}
		})
	}
}
