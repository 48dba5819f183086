// Package webpushtest is a push service of the tests' own (RFC 8030) that checks every request as
// a real one would, independently of the library pushlane sends with: it decrypts the aes128gcm
// body with the subscription's private key and auth secret following RFC 8291 with Go's
// crypto/ecdh and crypto/hkdf (Decrypt, itself checked against RFC 8291's example), verifies the
// VAPID JWT (RFC 8292) against the k parameter with crypto/ecdsa, and answers as the test
// scripts it: 201, 410, 429 with Retry-After, 500, a redirect, or no answer at all.
package webpushtest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Derived holds the values RFC 8291 derives for one message; Appendix A lists them for its
// example, so a test can compare each one.
type Derived struct {
	Salt     []byte
	RS       uint32
	ASPublic []byte // the sender's one-time public key (the header's keyid)
	ECDH     []byte // ecdh_secret
	PRKKey   []byte // PRK_key = HMAC-SHA-256(auth_secret, ecdh_secret)
	IKM      []byte
	PRK      []byte
	CEK      []byte
	Nonce    []byte
	Padding  int // zero octets after the padding delimiter
}

// Decrypt reverses RFC 8291 for the user agent holding uaPrivate and auth: it reads the
// aes128gcm header (RFC 8188: salt, rs, idlen, keyid), derives the key and nonce, opens the
// single record and removes the padding. It returns the plaintext and what it derived.
func Decrypt(body []byte, uaPrivate *ecdh.PrivateKey, auth []byte) ([]byte, Derived, error) {
	var d Derived
	if len(body) < 21 {
		return nil, d, errors.New("aes128gcm: body shorter than its header")
	}
	d.Salt = body[:16]
	d.RS = binary.BigEndian.Uint32(body[16:20])
	idlen := int(body[20])
	if idlen != 65 || len(body) < 21+idlen+16 {
		return nil, d, fmt.Errorf("aes128gcm: keyid of %d bytes, want the 65-byte sender key (RFC 8291 section 4)", idlen)
	}
	d.ASPublic = body[21 : 21+idlen]
	record := body[21+idlen:]
	if d.RS < 18 || uint32(len(record)) > d.RS {
		return nil, d, fmt.Errorf("aes128gcm: record of %d bytes with rs %d: not a single record", len(record), d.RS)
	}
	asPublic, err := ecdh.P256().NewPublicKey(d.ASPublic)
	if err != nil {
		return nil, d, fmt.Errorf("aes128gcm: sender key: %w", err)
	}
	if d.ECDH, err = uaPrivate.ECDH(asPublic); err != nil {
		return nil, d, err
	}
	// RFC 8291 section 3.3 and 3.4.
	if d.PRKKey, err = hkdf.Extract(sha256.New, d.ECDH, auth); err != nil {
		return nil, d, err
	}
	keyInfo := "WebPush: info\x00" + string(uaPrivate.PublicKey().Bytes()) + string(d.ASPublic)
	if d.IKM, err = hkdf.Expand(sha256.New, d.PRKKey, keyInfo, 32); err != nil {
		return nil, d, err
	}
	// RFC 8188 section 2.2 and 2.3.
	if d.PRK, err = hkdf.Extract(sha256.New, d.IKM, d.Salt); err != nil {
		return nil, d, err
	}
	if d.CEK, err = hkdf.Expand(sha256.New, d.PRK, "Content-Encoding: aes128gcm\x00", 16); err != nil {
		return nil, d, err
	}
	if d.Nonce, err = hkdf.Expand(sha256.New, d.PRK, "Content-Encoding: nonce\x00", 12); err != nil {
		return nil, d, err
	}
	block, err := aes.NewCipher(d.CEK)
	if err != nil {
		return nil, d, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, d, err
	}
	padded, err := gcm.Open(nil, d.Nonce, record, nil) // the first (and only) record: sequence 0
	if err != nil {
		return nil, d, fmt.Errorf("aes128gcm: record does not decrypt: %w", err)
	}
	// The last record ends with the delimiter 0x02 followed by zero octets (RFC 8188 section 2).
	end := len(bytes.TrimRight(padded, "\x00"))
	if end == 0 || padded[end-1] != 2 {
		return nil, d, errors.New("aes128gcm: no last-record padding delimiter (0x02)")
	}
	d.Padding = len(padded) - end
	return padded[:end-1], d, nil
}
