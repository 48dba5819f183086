package demo

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseChatMessage: any client frame either fails or yields a username of 1-64 characters
// and a text of 1-max bytes, both valid UTF-8; it never panics.
func FuzzParseChatMessage(f *testing.F) {
	for _, seed := range []string{
		`{"username":"alice","text":"hi"}`, `{"username":"","text":"x"}`, `{"text":"x"}`,
		`{"username":"a","text":"b","x":1}`, `{"username":"a","username":"b","text":"c"}`, `[1]`, `"s"`,
		`{"username":"a","text":"b"} {}`, "{\"username\":\"\xff\",\"text\":\"b\"}", `{"username":1,"text":"b"}`,
	} {
		f.Add([]byte(seed))
	}
	const maxText = 256
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseChatMessage(data, maxText)
		if err != nil {
			return
		}
		if n := utf8.RuneCountInString(m.Username); n < 1 || n > 64 || !utf8.ValidString(m.Username) {
			t.Fatalf("accepted username %q", m.Username)
		}
		if len(m.Text) < 1 || len(m.Text) > maxText || !utf8.ValidString(m.Text) {
			t.Fatalf("accepted text of %d bytes", len(m.Text))
		}
	})
}

// FuzzTailName: an accepted name is a bare file name (never a path, never "." or ".."), so
// nothing but the configured files can be named.
func FuzzTailName(f *testing.F) {
	for _, seed := range []string{"file=app.log", "file=../../etc/passwd", "file=%2e%2e", "file=/etc/passwd",
		"file=a/b", "file=a%5Cb", "file=app.log&file=x", "file=", "file=%00", "x=1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, query string) {
		values, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		name, problem := TailName(values)
		if problem != "" {
			return
		}
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") || len(name) > 255 {
			t.Fatalf("accepted %q", name)
		}
	})
}
