// Package vapidkey makes and checks VAPID key pairs (RFC 8292) as pushlane's configuration holds
// them: the public key a base64url uncompressed P-256 point (65 bytes, what browsers take as
// applicationServerKey), the private key the base64url 32-byte scalar (what
// github.com/SherClockHolmes/webpush-go signs with). The server, the configuration check and
// `pushlane webpush keys` share it, so all three agree on the format.
package vapidkey

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Pair is one VAPID key pair, base64url without padding.
type Pair struct {
	Public  string
	Private string
}

// Generate makes a new key pair.
func Generate() (Pair, error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return Pair{}, fmt.Errorf("generate a P-256 key: %w", err)
	}
	return Pair{
		Public:  base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()),
		Private: base64.RawURLEncoding.EncodeToString(k.Bytes()),
	}, nil
}

// Errors of Check, naming which half is wrong.
var (
	ErrBadPublic  = errors.New("not a base64url uncompressed P-256 point (65 bytes starting with 0x04)")
	ErrBadPrivate = errors.New("not a base64url P-256 private key (32 bytes)")
	ErrMismatch   = errors.New("is not the public key of the private key")
)

// ParsePublic decodes a public key: 65 bytes, an uncompressed point on P-256.
func ParsePublic(s string) (*ecdh.PublicKey, error) {
	b, err := Decode(s)
	if err != nil || len(b) != 65 || b[0] != 4 {
		return nil, ErrBadPublic
	}
	k, err := ecdh.P256().NewPublicKey(b)
	if err != nil {
		return nil, ErrBadPublic
	}
	return k, nil
}

// Check reports whether p is a usable key pair: ErrBadPublic, ErrBadPrivate or ErrMismatch.
func Check(p Pair) error {
	pub, err := ParsePublic(p.Public)
	if err != nil {
		return err
	}
	b, err := Decode(p.Private)
	if err != nil || len(b) != 32 {
		return ErrBadPrivate
	}
	priv, err := ecdh.P256().NewPrivateKey(b)
	if err != nil {
		return ErrBadPrivate
	}
	if !bytes.Equal(priv.PublicKey().Bytes(), pub.Bytes()) {
		return ErrMismatch
	}
	return nil
}

// Decode reads base64url with or without padding (browsers and tools write both), and standard
// base64 as some tools print it.
func Decode(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if strings.ContainsAny(s, "+/") {
		return base64.RawStdEncoding.DecodeString(s)
	}
	return base64.RawURLEncoding.DecodeString(s)
}
