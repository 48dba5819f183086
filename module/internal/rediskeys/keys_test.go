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
		for _, key := range []string{k.User(u), k.Presence(u), k.Idempotency(u, "k"), k.IdempotencyClaim(u, "k"), k.Expiry(), k.Nodes(), k.Epoch(), k.Floor(), k.Probe()} {
			shared := key == k.Expiry() || key == k.Nodes() || key == k.Epoch() || key == k.Floor() || key == k.Probe()
			if prev, ok := seen[key]; ok && prev != u && !shared {
				t.Fatalf("key %s shared by users %q and %q", key, prev, u)
			}
			seen[key] = u
		}
	}
	if k.UserChannel("u") != "p:user:u" || k.Control() != "p:control" || k.NodeChannel("n1") != "p:node:n1" {
		t.Fatal("channel names changed")
	}
}

// TestIdempotencyKeysDoNotCollide: a scope ending where a key begins cannot name another record.
func TestIdempotencyKeysDoNotCollide(t *testing.T) {
	k := New("p:")
	pairs := [][2]string{{"a", "b:c"}, {"a:b", "c"}, {"", "a:b:c"}, {"a:b:c", ""}, {"1:a", "b"}}
	seen := map[string][2]string{}
	for _, p := range pairs {
		for _, key := range []string{k.Idempotency(p[0], p[1]), k.IdempotencyClaim(p[0], p[1])} {
			if prev, ok := seen[key]; ok {
				t.Fatalf("key %s shared by %q and %q", key, prev, p)
			}
			seen[key] = p
		}
	}
}

func TestLastIDOfMeta(t *testing.T) {
	for meta, want := range map[string]uint64{"7,3": 7, "12,12,1": 12} {
		if got, ok := LastIDOfMeta(meta); !ok || got != want {
			t.Errorf("LastIDOfMeta(%q) = %d, %v; want %d", meta, got, ok, want)
		}
	}
	for _, bad := range []string{"", "7", "x,1", ",1"} {
		if _, ok := LastIDOfMeta(bad); ok {
			t.Errorf("LastIDOfMeta(%q) accepted", bad)
		}
	}
}
