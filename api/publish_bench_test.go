package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkPublishHandler: POST /pushNews through the router (validation, store, response),
// without the network, for each store driver.
func BenchmarkPublishHandler(b *testing.B) {
	for _, driver := range storeDrivers {
		b.Run(driver, func(b *testing.B) {
			e := newEnv(b, driver, nil)
			router := NewRouter(e.handlers)
			body := []byte(`{"userId":"bench-user","data":{"title":"hello","body":"a short notification body"}}`)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, "/pushNews", bytes.NewReader(body))
					rec := httptest.NewRecorder()
					router.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
			})
		})
	}
}

// BenchmarkParsePublish: the strict body parser alone.
func BenchmarkParsePublish(b *testing.B) {
	body := []byte(`{"userIds":["alice","bob","carol"],"data":{"title":"hello","tags":["a","b"],"n":42},"ttl":"1h"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePublish(body); err != nil {
			b.Fatal(err)
		}
	}
}
