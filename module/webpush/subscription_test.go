package webpush

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"pushlane/module"
)

func browserKeys(t testing.TB) (string, string) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), "AAAAAAAAAAAAAAAAAAAAAA"
}

func TestParseSubscription(t *testing.T) {
	p256dh, auth := browserKeys(t)
	std := base64.StdEncoding.EncodeToString(must(base64.RawURLEncoding.DecodeString(p256dh)))
	ok := func(endpoint string) string {
		return `{"endpoint":"` + endpoint + `","expirationTime":null,"keys":{"p256dh":"` + p256dh + `","auth":"` + auth + `"}}`
	}
	sub, err := ParseSubscription("u", []byte(ok("HTTPS://Push.Example.COM:443/a/b?c=d")))
	if err != nil {
		t.Fatal(err)
	}
	if sub.Endpoint != "https://push.example.com/a/b?c=d" || sub.P256dh != p256dh || sub.Auth != auth || sub.UserID != "u" {
		t.Fatalf("parsed %+v", sub)
	}
	if sub.Origin() != "https://push.example.com" {
		t.Fatalf("origin %q", sub.Origin())
	}
	// Padded and standard base64 are read and stored as base64url.
	padded := `{"endpoint":"https://p.example/x","keys":{"p256dh":"` + std + `","auth":"` + auth + `=="}}`
	if sub, err := ParseSubscription("u", []byte(padded)); err != nil || sub.P256dh != p256dh || sub.Auth != auth {
		t.Fatalf("padded standard base64: %+v %v", sub, err)
	}
	if sub, _ := ParseSubscription("u", []byte(ok("http://p.example:80/x"))); sub.Endpoint != "http://p.example/x" {
		t.Fatalf("default http port kept: %q", sub.Endpoint)
	}
	for name, body := range map[string]string{
		"empty":        ``,
		"array":        `[]`,
		"trailing":     ok("https://p.example/x") + `x`,
		"second value": ok("https://p.example/x") + `{}`,
		"no endpoint":  `{"keys":{"p256dh":"` + p256dh + `","auth":"` + auth + `"}}`,
		"no keys":      `{"endpoint":"https://p.example/x"}`,
		"no auth":      `{"endpoint":"https://p.example/x","keys":{"p256dh":"` + p256dh + `"}}`,
		"space":        ok("https://p.example/a b"),
		"relative":     ok("/x"),
		"opaque":       ok("https:p.example"),
		"scheme":       ok("wss://p.example/x"),
		"user":         ok("https://u@p.example/x"),
		"fragment":     ok("https://p.example/x#y"),
		"empty host":   ok("https:///x"),
		"long":         ok("https://p.example/" + strings.Repeat("a", 2100)),
		"short point":  strings.Replace(ok("https://p.example/x"), p256dh, p256dh[:40], 1),
		"compressed":   strings.Replace(ok("https://p.example/x"), p256dh, "A"+p256dh[1:44], 1),
		"off curve":    strings.Replace(ok("https://p.example/x"), p256dh, "BAAA"+p256dh[4:], 1),
		"auth 15":      strings.Replace(ok("https://p.example/x"), auth, "AAAAAAAAAAAAAAAAAAAA", 1),
		"auth 17":      strings.Replace(ok("https://p.example/x"), auth, "AAAAAAAAAAAAAAAAAAAAAAAA", 1),
	} {
		if _, err := ParseSubscription("u", []byte(body)); !errors.Is(err, ErrBadSubscription) {
			t.Errorf("%s: %v, want ErrBadSubscription", name, err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// FuzzParseSubscription: no input panics, and what is accepted is canonical (parsing its own
// output gives it back) with keys of the right sizes.
func FuzzParseSubscription(f *testing.F) {
	p256dh, auth := browserKeys(f)
	f.Add(`{"endpoint":"https://fcm.googleapis.com/fcm/send/abc","keys":{"p256dh":"` + p256dh + `","auth":"` + auth + `"}}`)
	f.Add(`{"endpoint":"https://[::1]:8443/x","keys":{"p256dh":"","auth":""}}`)
	f.Add(`{"endpoint":"http://a/%zz","keys":null}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, body string) {
		sub, err := ParseSubscription("u", []byte(body))
		if err != nil {
			if !errors.Is(err, ErrBadSubscription) {
				t.Fatalf("error %v does not wrap ErrBadSubscription", err)
			}
			return
		}
		again, err := CanonicalEndpoint(sub.Endpoint)
		if err != nil || again != sub.Endpoint {
			t.Fatalf("endpoint %q is not canonical: %q %v", sub.Endpoint, again, err)
		}
		if len(must(base64.RawURLEncoding.DecodeString(sub.P256dh))) != 65 || len(must(base64.RawURLEncoding.DecodeString(sub.Auth))) != 16 {
			t.Fatalf("keys %q %q", sub.P256dh, sub.Auth)
		}
	})
}

func TestPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.216.34": true, "142.250.185.106": true, "2a00:1450:4001:80b::200a": true,
		"127.0.0.1": false, "127.8.9.10": false, "10.0.0.1": false, "172.16.5.4": false, "192.168.1.1": false,
		"169.254.169.254": false, "100.100.100.200": false, "0.0.0.0": false, "255.255.255.255": false,
		"224.0.0.1": false, "240.0.0.1": false, "192.0.2.1": false, "198.18.0.1": false,
		"::1": false, "::": false, "fe80::1": false, "fd00:ec2::254": false, "fc00::1": false, "ff02::1": false,
		"::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "::ffff:93.184.216.34": true,
		"64:ff9b::7f00:1": false, "2002:7f00:1::1": false, "2001:db8::1": false, "2001:0:4136:e378::1": false,
	} {
		if got := PublicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("PublicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

// staticResolver resolves every name to the same addresses.
type staticResolver []netip.Addr

func (r staticResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return r, nil
}

func TestEndpointPolicyCheck(t *testing.T) {
	public := staticResolver{netip.MustParseAddr("93.184.216.34")}
	mixed := staticResolver{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.0.0.1")}
	p := NewEndpointPolicy([]string{"http://127.0.0.1:9999", "https://Push.Internal"}, public)
	for endpoint, ok := range map[string]bool{
		"https://push.example/x":            true,
		"http://push.example/x":             false, // https only
		"https://127.0.0.1/x":               false,
		"http://127.0.0.1:9999/x":           true, // listed, scheme and port included
		"https://127.0.0.1:9999/x":          false,
		"https://push.internal/x":           true, // listed with the default port
		"https://push.internal:8443/x":      true, // not listed, but https on a public address
		"https://[::ffff:169.254.169.254]/": false,
	} {
		if err := p.Check(context.Background(), endpoint); (err == nil) != ok {
			t.Errorf("Check(%s) = %v, want allowed %v", endpoint, err, ok)
		} else if err != nil && !errors.Is(err, ErrEndpointRefused) {
			t.Errorf("Check(%s) = %v, want ErrEndpointRefused", endpoint, err)
		}
	}
	if err := NewEndpointPolicy(nil, mixed).Check(context.Background(), "https://push.example/x"); !errors.Is(err, ErrEndpointRefused) {
		t.Errorf("a name with one private address among public ones: %v, want refused", err)
	}
}

func TestPayload(t *testing.T) {
	created := time.Date(2026, 11, 21, 10, 0, 0, 123e6, time.UTC)
	small := module.Message{ID: 42, UserID: "u", Data: []byte(`{"title":"hi"}`), CreatedAt: created}
	if got := string(Payload(&small)); got != `{"id":"42","userId":"u","data":{"title":"hi"},"createdAt":"2026-11-21T10:00:00.123Z"}` {
		t.Fatalf("small payload %s", got)
	}
	overhead := len(small.Frame()) - len(small.Data)
	exact := module.Message{ID: 42, UserID: "u", Data: []byte(`"` + strings.Repeat("x", MaxPlaintextBytes-overhead-2) + `"`), CreatedAt: created}
	if got := Payload(&exact); len(got) != MaxPlaintextBytes || string(got) != string(exact.Frame()) {
		t.Fatalf("a frame of exactly %d bytes: %d bytes pushed", MaxPlaintextBytes, len(got))
	}
	big := exact
	big.Data = []byte(`"` + strings.Repeat("x", MaxPlaintextBytes-overhead-1) + `"`)
	if got := string(Payload(&big)); got != `{"id":"42","userId":"u","createdAt":"2026-11-21T10:00:00.123Z","truncated":true}` {
		t.Fatalf("over %d bytes: %s", MaxPlaintextBytes, got)
	}
}

func TestBackoffBounds(t *testing.T) {
	w := New(nil, nil, Options{MinBackoff: time.Second, MaxBackoff: 8 * time.Second})
	for attempt := range 10 {
		full := min(time.Second<<attempt, 8*time.Second)
		for range 50 {
			if d := w.backoff(attempt); d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, d, full/2, full)
			}
		}
	}
}
