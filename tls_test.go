package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir and returns a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pushlane test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLSRoundTrip serves HTTPS and wss:// from server.tls.certFile/keyFile: a message published
// over HTTPS arrives over wss://, and plain HTTP on the same port gets no service.
func TestTLSRoundTrip(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := "server:\n  addr: \"127.0.0.1:0\"\n  tls:\n    certFile: " + certFile + "\n    keyFile: " + keyFile +
		"\nstore:\n  path: " + filepath.Join(dir, "push.db") + "\nlog:\n  level: warn\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, outW := io.Pipe()
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"--config", cfgPath}, func(string) string { return "" }, nil, outW, io.Discard)
		outW.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exit:
		case <-time.After(15 * time.Second):
			t.Error("run did not return after cancel")
		}
	})
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		t.Fatal("no listening line")
	}
	base := strings.TrimSpace(strings.TrimPrefix(lines.Text(), "pushlane listening on "))
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("listening line %q does not announce https", lines.Text())
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("https healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}

	dialer := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}, HandshakeTimeout: 5 * time.Second}
	conn, _, err := dialer.Dial("wss://"+strings.TrimPrefix(base, "https://")+"/getPushNews?userId=tls-user", nil)
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	defer conn.Close()
	resp, err = client.Post(base+"/pushNews", "application/json", strings.NewReader(`{"userId":"tls-user","data":{"secure":true}}`))
	if err != nil {
		t.Fatalf("https publish: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish: %d", resp.StatusCode)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var frame struct {
		Data struct{ Secure bool } `json:"data"`
	}
	if err := conn.ReadJSON(&frame); err != nil || !frame.Data.Secure {
		t.Fatalf("wss frame: %+v %v", frame, err)
	}

	// Server-Sent Events over TLS: HTTP/1.1 (the connection is taken over, a *tls.Conn) and
	// HTTP/2 (the stream stays a response), each receiving a published message.
	for _, tc := range []struct {
		name  string
		proto int
		tr    *http.Transport
	}{
		{"HTTP/1.1", 1, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}},
		{"HTTP/2", 2, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}},
	} {
		user := "tls-sse-" + strings.ReplaceAll(tc.name, "/", "")
		req, _ := http.NewRequest(http.MethodGet, base+"/getPushNews?userId="+user, nil)
		req.Header.Set("Accept", "text/event-stream")
		stream, err := (&http.Client{Transport: tc.tr}).Do(req)
		if err != nil {
			t.Fatalf("%s event stream: %v", tc.name, err)
		}
		if stream.StatusCode != http.StatusOK || stream.ProtoMajor != tc.proto || stream.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("%s event stream: %d %s %q, want 200 text/event-stream over %s", tc.name, stream.StatusCode, stream.Proto, stream.Header.Get("Content-Type"), tc.name)
		}
		resp, err = client.Post(base+"/pushNews", "application/json", strings.NewReader(`{"userId":"`+user+`","data":{"secure":true}}`))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("https publish to %s: %v", user, err)
		}
		resp.Body.Close()
		got := make(chan string, 1)
		go func() {
			events := bufio.NewScanner(stream.Body)
			for events.Scan() {
				if line := events.Text(); strings.HasPrefix(line, "data: ") {
					got <- line
					return
				}
			}
			got <- fmt.Sprintf("stream ended (%v)", events.Err())
		}()
		select {
		case line := <-got:
			if !strings.Contains(line, `"secure":true`) {
				t.Fatalf("%s event: %s", tc.name, line)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no event within 5s", tc.name)
		}
		stream.Body.Close()
		tc.tr.CloseIdleConnections()
	}

	// Plain HTTP to the TLS port is not served.
	plain := &http.Client{Timeout: 3 * time.Second}
	if resp, err := plain.Get("http://" + strings.TrimPrefix(base, "https://") + "/healthz"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var h map[string]string
		if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &h) == nil && h["status"] == "ok" {
			t.Fatal("plain HTTP was served on the TLS listener")
		}
	}
}
