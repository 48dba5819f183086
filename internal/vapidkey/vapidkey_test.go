package vapidkey

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestGenerateAndCheck(t *testing.T) {
	a, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate()
	if err := Check(a); err != nil {
		t.Fatalf("a generated pair: %v", err)
	}
	if pub, _ := base64.RawURLEncoding.DecodeString(a.Public); len(pub) != 65 || pub[0] != 4 {
		t.Fatalf("public key %q is not an uncompressed point", a.Public)
	}
	if priv, _ := base64.RawURLEncoding.DecodeString(a.Private); len(priv) != 32 {
		t.Fatalf("private key %q is not 32 bytes", a.Private)
	}
	if a == b {
		t.Fatal("two pairs are equal")
	}
	// Padded and standard base64 are read too (tools print both).
	priv, _ := base64.RawURLEncoding.DecodeString(a.Private)
	if err := Check(Pair{Public: a.Public + "=", Private: base64.StdEncoding.EncodeToString(priv)}); err != nil {
		t.Fatalf("padded or standard base64: %v", err)
	}
	for name, tc := range map[string]struct {
		p    Pair
		want error
	}{
		"mismatch":         {Pair{Public: b.Public, Private: a.Private}, ErrMismatch},
		"public too short": {Pair{Public: a.Public[:40], Private: a.Private}, ErrBadPublic},
		"public off curve": {Pair{Public: "BA" + strings.Repeat("A", 85), Private: a.Private}, ErrBadPublic},
		"public not b64":   {Pair{Public: "not base64!", Private: a.Private}, ErrBadPublic},
		"private short":    {Pair{Public: a.Public, Private: a.Private[:20]}, ErrBadPrivate},
		"private zero":     {Pair{Public: a.Public, Private: strings.Repeat("A", 43)}, ErrBadPrivate},
	} {
		if err := Check(tc.p); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}
