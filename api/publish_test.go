package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"pushlane/module"
)

// The publish answer is written by hand; it must decode to what encoding/json would have written.
func TestAppendPublishResponse(t *testing.T) {
	type result struct {
		UserID string `json:"userId"`
		ID     string `json:"id"`
		Online bool   `json:"online"`
	}
	for _, in := range [][]module.PublishResult{
		{{UserID: "alice", ID: 1, Online: true}},
		{{UserID: "a.b:c@d_e-f", ID: 18446744073709551615}, {UserID: "bob", ID: 42, Online: true}, {UserID: "carol", ID: 43}},
	} {
		out := appendPublishResponse(nil, in)
		var got struct{ Results []result }
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		want := make([]result, len(in))
		for i, r := range in {
			want[i] = result{UserID: r.UserID, ID: module.FormatID(r.ID), Online: r.Online}
		}
		if !reflect.DeepEqual(got.Results, want) {
			t.Fatalf("%s decodes to %+v, want %+v", out, got.Results, want)
		}
	}
}
