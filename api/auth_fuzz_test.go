package api_test

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"pushlane/api"
)

// FuzzVerifyToken feeds arbitrary tokens to the subscriber token check: it must never panic, and
// whatever it accepts must be for the right user and not expired.
func FuzzVerifyToken(f *testing.F) {
	secret := []byte(secSecret)
	future := time.Now().Add(24 * time.Hour).Unix()
	good, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": future}).SignedString(secret)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": future}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, seed := range []string{good, none, "", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", good + "x", "....", "\x00"} {
		f.Add(seed, "alice")
	}
	v := api.NewTokenVerifier(secSecret)
	f.Fuzz(func(t *testing.T, tok, user string) {
		exp, err := v.Verify(tok, user)
		if err != nil {
			return
		}
		if !exp.After(time.Now()) {
			t.Fatalf("accepted an expired token: exp %v", exp)
		}
		var claims jwt.RegisteredClaims
		if _, _, err := jwt.NewParser().ParseUnverified(tok, &claims); err != nil || claims.Subject != user {
			t.Fatalf("accepted a token whose sub %q is not %q", claims.Subject, user)
		}
	})
}
