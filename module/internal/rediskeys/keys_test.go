package rediskeys

import "testing"

func TestLiveRoundTrip(t *testing.T) {
	for _, data := range []string{`{"a":1}`, `"with:colons:inside"`, `0`, "\"\\u0000\"", `[1,2]`} {
		p := EncodeLive(42, 1700000000123, []byte(data))
		id, created, got, err := DecodeLive(p)
		if err != nil || id != 42 || created != 1700000000123 || got != data {
			t.Fatalf("DecodeLive(%q) = %d %d %q %v", p, id, created, got, err)
		}
	}
	for _, bad := range []string{"", "x", "1:2", "1:2:", ":2:x", "0:2:x", "a:2:x", "1:b:x", "1::x"} {
		if _, _, _, err := DecodeLive(bad); err == nil {
			t.Errorf("DecodeLive(%q) accepted", bad)
		}
	}
}

func TestKeysDoNotCollide(t *testing.T) {
	k := New("p:")
	seen := map[string]string{}
	for _, u := range []string{"a", "a:s", "s", "msgs:{a}", "a}", "x:y"} {
		for _, key := range []string{k.Stream(u), k.Counter(u), k.Cursor(u), k.Delivered(u), k.Presence(u), k.Expiry(), k.Nodes()} {
			if prev, ok := seen[key]; ok && prev != u && key != k.Expiry() && key != k.Nodes() {
				t.Fatalf("key %s shared by users %q and %q", key, prev, u)
			}
			seen[key] = u
		}
	}
	if k.UserChannel("u") != "p:user:u" || k.Control() != "p:control" || k.NodeChannel("n1") != "p:node:n1" {
		t.Fatal("channel names changed")
	}
}
