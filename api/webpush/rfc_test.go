package webpush_test

// The library pushlane sends with (github.com/SherClockHolmes/webpush-go) against the RFCs' own
// examples. Its encryption draws its key pair and salt inside the call, so RFC 8291's example
// cannot be reproduced byte for byte through it; instead the receiver that reads its output
// (webpushtest.Decrypt, Go's crypto/ecdh and crypto/hkdf) is itself checked against every value
// of RFC 8291 Appendix A, and the VAPID verifier against RFC 8292's example token. Then every
// request the library makes must pass both.

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	sender "pushlane/api/webpush"
	"pushlane/api/webpush/webpushtest"
	"pushlane/internal/vapidkey"
	"pushlane/module/webpush"
)

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecryptMatchesRFC8291AppendixA: the test push service's decryption derives every value of
// RFC 8291's example (Appendix A) and reads its plaintext.
func TestDecryptMatchesRFC8291AppendixA(t *testing.T) {
	body := b64(t, "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN")
	ua, err := ecdh.P256().NewPrivateKey(b64(t, "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"))
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(ua.PublicKey().Bytes()); got != "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4" {
		t.Fatalf("ua_public %s", got)
	}
	plain, d, err := webpushtest.Decrypt(body, ua, b64(t, "BTBZMqHH6r4Tts7J_aSIgg"))
	if err != nil {
		t.Fatal(err)
	}
	if string(plain) != "When I grow up, I want to be a watermelon" {
		t.Fatalf("plaintext %q", plain)
	}
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"salt", d.Salt, "DGv6ra1nlYgDCS1FRnbzlw"},
		{"as_public", d.ASPublic, "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"},
		{"PRK_key", d.PRKKey, "Snr3JMxaHVDXHWJn5wdC52WjpCtd2EIEGBykDcZW32k"},
		{"IKM", d.IKM, "S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg"},
		{"PRK", d.PRK, "09_eUZGrsvxChDCGRCdkLiDXrReGOEVeSCdCcPBSJSc"},
		{"CEK", d.CEK, "oIhVW04MRdy2XN9CiKLxTg"},
		{"NONCE", d.Nonce, "4h_95klXJ5E_qnoN"},
	} {
		if got := base64.RawURLEncoding.EncodeToString(c.got); got != c.want {
			t.Errorf("%s = %s, RFC 8291 Appendix A says %s", c.name, got, c.want)
		}
	}
	if d.RS != 4096 || d.Padding != 0 {
		t.Errorf("rs %d padding %d, want 4096 and 0", d.RS, d.Padding)
	}
	// One flipped bit of the ciphertext, or the wrong auth secret: no plaintext.
	bad := bytes.Clone(body)
	bad[len(bad)-1] ^= 1
	if _, _, err := webpushtest.Decrypt(bad, ua, b64(t, "BTBZMqHH6r4Tts7J_aSIgg")); err == nil {
		t.Error("a tampered body decrypted")
	}
	if _, _, err := webpushtest.Decrypt(body, ua, make([]byte, 16)); err == nil {
		t.Error("the body decrypted with another auth secret")
	}
}

// TestVerifyJWTAcceptsRFC8292Example: the VAPID verifier accepts RFC 8292's example token
// under its key, with its claims, and refuses it altered.
func TestVerifyJWTAcceptsRFC8292Example(t *testing.T) {
	const token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJhdWQiOiJodHRwczovL3B1c2guZXhhbXBsZS5uZXQiLCJleHAiOjE0NTM1MjM3NjgsInN1YiI6Im1haWx0bzpwdXNoQGV4YW1wbGUuY29tIn0.i3CYb7t4xfxCDquptFOepC9GAu_HLGkMlMuCGSK2rpiUfnK9ojFwDXb1JrErtmysazNjjvW2L9OkSSHzvoD1oA"
	const key = "BA1Hxzyi1RUM1b5wjxsn7nGxAszw2u61m164i3MrAIxHF6YK5h4SDYic-dRuU_RCPCfA5aq9ojSwk5Y2EmClBPs"
	c, err := webpushtest.VerifyJWT(token, key)
	if err != nil {
		t.Fatal(err)
	}
	if c.Aud != "https://push.example.net" || c.Exp != 1453523768 || c.Sub != "mailto:push@example.com" {
		t.Fatalf("claims %+v", c)
	}
	parts := strings.Split(token, ".")
	altered := parts[0] + "." + strings.Replace(parts[1], "LCJleHAiOjE0NTM1MjM3NjgsI", "LCJleHAiOjE0NTM1MjM3NjksI", 1) + "." + parts[2]
	if altered == token {
		t.Fatal("the alteration changed nothing")
	}
	if _, err := webpushtest.VerifyJWT(altered, key); err == nil {
		t.Fatal("an altered token verified")
	}
	other, _ := vapidkey.Generate()
	if _, err := webpushtest.VerifyJWT(token, other.Public); err == nil {
		t.Fatal("the token verified under another key")
	}
}

// newPair is a VAPID pair for a test.
func newPair(t *testing.T) vapidkey.Pair {
	t.Helper()
	p, err := vapidkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const subject = "mailto:ops@example.com"

// tlsService is a push service over TLS whose origin is listed, and a Sender that trusts it.
func tlsService(t *testing.T) (*webpushtest.Service, *sender.Sender, vapidkey.Pair) {
	t.Helper()
	pair := newPair(t)
	svc := webpushtest.New(t, webpushtest.Options{VAPIDPublicKey: pair.Public, Subject: subject, TLS: true})
	roots := x509.NewCertPool()
	roots.AddCert(svc.Server().Certificate())
	s := sender.New(sender.Options{PublicKey: pair.Public, PrivateKey: pair.Private, Subject: subject,
		Policy: webpush.NewEndpointPolicy([]string{svc.URL()}, nil), RootCAs: roots})
	t.Cleanup(s.Close)
	return svc, s, pair
}

func subOf(b *webpushtest.Browser) webpush.Subscription {
	sub, err := webpush.ParseSubscription("u", []byte(b.SubscriptionJSON()))
	if err != nil {
		panic(err)
	}
	sub.ID = "s-" + b.Name
	return sub
}

// TestSenderFollowsTheRFCs: what the library sends passes the RFC-checked receiver: it decrypts
// with the subscription's keys, is one record of rs 4096 padded to a 4096-byte body, uses a new
// key pair and salt for every request, and carries a VAPID token signed by the server's key with
// aud the endpoint's origin, exp at most 12 hours ahead and the configured subject (with a single
// mailto:), TTL and Urgency: normal.
func TestSenderFollowsTheRFCs(t *testing.T) {
	svc, s, _ := tlsService(t)
	b := svc.Browser("b")
	payload := []byte(`{"id":"7","userId":"u","data":{"title":"hi"},"createdAt":"2026-11-21T10:00:00.123Z"}`)
	for range 2 {
		resp, err := s.Send(context.Background(), subOf(b), payload, 90*time.Minute+500*time.Millisecond)
		if err != nil || resp.Status != http.StatusCreated {
			t.Fatalf("Send = %+v, %v", resp, err)
		}
	}
	pushes := svc.Pushes()
	if len(pushes) != 2 {
		t.Fatalf("%d requests, want 2", len(pushes))
	}
	for _, p := range pushes {
		if len(p.Problems) > 0 {
			t.Errorf("request problems: %v", p.Problems)
		}
		if !bytes.Equal(p.Plaintext, payload) {
			t.Errorf("plaintext %q, want %q", p.Plaintext, payload)
		}
		if p.Header.Get("TTL") != "5400" {
			t.Errorf("TTL %q, want 5400", p.Header.Get("TTL"))
		}
		if p.Derived.RS != 4096 || p.Derived.Padding == 0 {
			t.Errorf("rs %d, padding %d: want one 4096-byte record, padded", p.Derived.RS, p.Derived.Padding)
		}
		if p.Claims.Sub != subject {
			t.Errorf("sub %q, want %q", p.Claims.Sub, subject)
		}
	}
	if bytes.Equal(pushes[0].Derived.Salt, pushes[1].Derived.Salt) || bytes.Equal(pushes[0].Derived.ASPublic, pushes[1].Derived.ASPublic) {
		t.Error("two requests share a salt or a sender key")
	}
}

// TestSenderHTTPSSubject: an https: subject is sent as is.
func TestSenderHTTPSSubject(t *testing.T) {
	pair := newPair(t)
	svc := webpushtest.New(t, webpushtest.Options{VAPIDPublicKey: pair.Public, Subject: "https://ops.example.com/contact"})
	s := sender.New(sender.Options{PublicKey: pair.Public, PrivateKey: pair.Private, Subject: "https://ops.example.com/contact",
		Policy: webpush.NewEndpointPolicy([]string{svc.URL()}, nil)})
	t.Cleanup(s.Close)
	if _, err := s.Send(context.Background(), subOf(svc.Browser("b")), []byte(`"x"`), time.Hour); err != nil {
		t.Fatal(err)
	}
	if p := svc.Pushes(); len(p) != 1 || len(p[0].Problems) > 0 {
		t.Fatalf("pushes %+v", p)
	}
}

// TestSenderNeverFollowsRedirects: a 307 is the answer; the Location is never requested.
func TestSenderNeverFollowsRedirects(t *testing.T) {
	svc, s, _ := tlsService(t)
	b := svc.Browser("b")
	svc.Answer("b", webpushtest.Answer{Status: http.StatusTemporaryRedirect, Location: svc.URL() + "/moved"},
		webpushtest.Answer{Status: http.StatusMovedPermanently, Location: "/moved"})
	for _, want := range []int{307, 301} {
		resp, err := s.Send(context.Background(), subOf(b), []byte(`"x"`), time.Hour)
		if err != nil || resp.Status != want {
			t.Fatalf("Send = %+v, %v; want %d", resp, err, want)
		}
	}
	if n := svc.Redirected(); n != 0 {
		t.Fatalf("the redirect target was requested %d times", n)
	}
}

// TestSenderRetryAfter: Retry-After in seconds and as an HTTP date.
func TestSenderRetryAfter(t *testing.T) {
	svc, s, _ := tlsService(t)
	b := svc.Browser("b")
	svc.Answer("b", webpushtest.Answer{Status: 429, RetryAfter: "120"},
		webpushtest.Answer{Status: 503, RetryAfter: time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)},
		webpushtest.Answer{Status: 500}, webpushtest.Answer{Status: 500, RetryAfter: "soon"})
	check := func(status int, want time.Duration, has bool) {
		t.Helper()
		resp, err := s.Send(context.Background(), subOf(b), []byte(`"x"`), time.Hour)
		if err != nil || resp.Status != status || resp.HasRetryAfter != has {
			t.Fatalf("Send = %+v, %v; want %d with Retry-After %v", resp, err, status, has)
		}
		if has && (resp.RetryAfter > want || resp.RetryAfter < want-2*time.Second) {
			t.Fatalf("Retry-After %v, want about %v", resp.RetryAfter, want)
		}
	}
	check(429, 120*time.Second, true)
	check(503, time.Hour, true)
	check(500, 0, false)
	check(500, 0, false)
}

// fakeResolver answers from a map the test changes.
type fakeResolver struct{ addrs map[string][]netip.Addr }

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f.addrs[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

// TestSenderRefusesNonPublicAddresses: an endpoint whose origin is not listed must be https://
// and is dialled only at public addresses, whatever the name resolves to when the request is
// made: loopback, private, link-local (the cloud metadata address), unique-local, NAT64 of
// loopback, IPv4-mapped loopback. Nothing reaches the push service on 127.0.0.1.
func TestSenderRefusesNonPublicAddresses(t *testing.T) {
	pair := newPair(t)
	svc := webpushtest.New(t, webpushtest.Options{VAPIDPublicKey: pair.Public, Subject: subject, TLS: true})
	port := svc.Server().Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	res := fakeResolver{addrs: map[string][]netip.Addr{}}
	s := sender.New(sender.Options{PublicKey: pair.Public, PrivateKey: pair.Private, Subject: subject,
		Policy: webpush.NewEndpointPolicy(nil, res), ConnectTimeout: time.Second})
	t.Cleanup(s.Close)
	b := svc.Browser("b")
	for _, addr := range []string{"127.0.0.1", "10.1.2.3", "169.254.169.254", "fd00:ec2::254", "64:ff9b::7f00:1", "::ffff:127.0.0.1", "0.0.0.0", "::1"} {
		res.addrs["push.test"] = []netip.Addr{netip.MustParseAddr(addr)}
		sub := subOf(b)
		sub.Endpoint = "https://push.test:" + strconv.Itoa(int(port)) + "/push/b"
		if _, err := s.Send(context.Background(), sub, []byte(`"x"`), time.Hour); !errors.Is(err, webpush.ErrEndpointRefused) {
			t.Errorf("push.test at %s: Send error %v, want ErrEndpointRefused", addr, err)
		}
		// The literal address in the URL is refused the same way.
		literal := sub
		literal.Endpoint = "https://" + netip.AddrPortFrom(netip.MustParseAddr(addr), port).String() + "/push/b"
		if _, err := s.Send(context.Background(), literal, []byte(`"x"`), time.Hour); !errors.Is(err, webpush.ErrEndpointRefused) {
			t.Errorf("%s: Send error %v, want ErrEndpointRefused", literal.Endpoint, err)
		}
	}
	plain := subOf(b)
	plain.Endpoint = "http://push.test/push/b"
	if _, err := s.Send(context.Background(), plain, []byte(`"x"`), time.Hour); !errors.Is(err, webpush.ErrEndpointRefused) {
		t.Errorf("http:// endpoint: %v, want ErrEndpointRefused", err)
	}
	if n := len(svc.Pushes()); n != 0 {
		t.Fatalf("the push service on 127.0.0.1 received %d requests", n)
	}
}
