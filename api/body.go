package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"pushlane/module"
)

// errBodyTooLarge is answered with 413.
var errBodyTooLarge = errors.New("body too large")

// readBody reads at most limit bytes of the request body.
func readBody(w http.ResponseWriter, r *http.Request, limit int) ([]byte, error) {
	if r.ContentLength > int64(limit) {
		return nil, errBodyTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errBodyTooLarge
		}
		return nil, fmt.Errorf("read body: %w", err)
	}
	return body, nil
}

// MaxBatchUsers is the most userIds one publish may name.
const MaxBatchUsers = 1000

// PublishRequest is a validated POST /pushNews body.
type PublishRequest struct {
	UserIDs []string        // distinct, in first-seen order
	Data    json.RawMessage // compact, not null
	TTL     time.Duration   // 0 = the store's default
}

// ParsePublish validates a POST /pushNews body strictly: one JSON object with exactly the known,
// case-sensitive fields, each at most once, nothing but whitespace after it. Field names are
// matched exactly because encoding/json alone would accept "TTL" for "ttl" and silently take the
// last of duplicate keys. One pass of a jsontext tokenizer does it (about 5x cheaper than
// encoding/json's Decoder.Token, which boxes every token).
func ParsePublish(body []byte) (PublishRequest, error) {
	var req PublishRequest
	var hasOne, hasMany bool
	err := readObject(body, publishFields, func(field int, dec *jsontext.Decoder) error {
		var err error
		switch publishFields[field] {
		case "userId":
			hasOne = true
			var id string
			if id, err = readString(dec); err != nil {
				return errors.New("userId must be a string")
			}
			if !module.ValidUserID(id) {
				return fmt.Errorf("userId: %w", module.ErrBadUserID)
			}
			req.UserIDs = []string{id}
		case "userIds":
			hasMany = true
			req.UserIDs, err = readUserIDs(dec)
		case "data":
			req.Data, err = readData(dec)
		case "ttl":
			req.TTL, err = readTTL(dec)
		}
		return err
	})
	if err != nil {
		return PublishRequest{}, err
	}
	switch {
	case hasOne && hasMany:
		return PublishRequest{}, errors.New("give either userId or userIds, not both")
	case !hasOne && !hasMany:
		return PublishRequest{}, errors.New("userId or userIds is required")
	case req.Data == nil:
		return PublishRequest{}, errors.New("data is required")
	}
	return req, nil
}

var publishFields = []string{"userId", "userIds", "data", "ttl"}

// ParseBroadcast validates a POST /broadcast body: {"data": <any JSON but null>}.
func ParseBroadcast(body []byte) (json.RawMessage, error) {
	var data json.RawMessage
	err := readObject(body, []string{"data"}, func(_ int, dec *jsontext.Decoder) (err error) {
		data, err = readData(dec)
		return err
	})
	if err == nil && data == nil {
		err = errors.New("data is required")
	}
	return data, err
}

func readUserIDs(dec *jsontext.Decoder) ([]string, error) {
	notList := errors.New("userIds must be a list of strings")
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		return nil, notList
	}
	var ids []string
	var seen map[string]struct{}
	n := 0
	for ; dec.PeekKind() != ']'; n++ {
		if n >= MaxBatchUsers { // only count the rest, to say how many there were
			if err := dec.SkipValue(); err != nil {
				return nil, notList
			}
			continue
		}
		id, err := readString(dec)
		if err != nil {
			return nil, fmt.Errorf("userIds[%d] must be a string", n)
		}
		if !module.ValidUserID(id) {
			return nil, fmt.Errorf("userIds[%d]: %w", n, module.ErrBadUserID)
		}
		if seen == nil {
			seen = make(map[string]struct{})
		}
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			ids = append(ids, id)
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, notList
	}
	switch {
	case n == 0:
		return nil, errors.New("userIds must not be empty")
	case n > MaxBatchUsers:
		return nil, fmt.Errorf("userIds holds %d ids; at most %d are allowed", n, MaxBatchUsers)
	}
	return ids, nil
}

// readData reads any JSON value but null, compacted into a slice of its own.
func readData(dec *jsontext.Decoder) (json.RawMessage, error) {
	raw, err := dec.ReadValue()
	if err != nil {
		return nil, errors.New("data is not valid JSON")
	}
	data := raw.Clone()
	if err := data.Compact(); err != nil {
		return nil, errors.New("data is not valid JSON")
	}
	if string(data) == "null" {
		return nil, errors.New("data must not be null")
	}
	return json.RawMessage(data), nil
}

func readTTL(dec *jsontext.Decoder) (time.Duration, error) {
	s, err := readString(dec)
	if err != nil {
		return 0, errors.New(`ttl must be a string holding a Go duration such as "90s" or "24h"`)
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf(`ttl %q is not a positive Go duration such as "90s" or "24h"`, s)
	}
	return d, nil
}

// readString reads a JSON string (and only a string: null is refused too).
func readString(dec *jsontext.Decoder) (string, error) {
	tok, err := dec.ReadToken()
	if err != nil || tok.Kind() != '"' {
		return "", errors.New("not a string")
	}
	return tok.String(), nil
}

// tokenizerOptions: the tokenizer only splits and checks syntax. UTF-8 is checked on the whole body
// first (to say so plainly), duplicate names are refused by readObject for the known fields, and
// inside data both are left as encoding/json left them (escaped lone surrogates and repeated
// names inside data are the publisher's business).
var tokenizerOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

var decoders = sync.Pool{New: func() any { return jsontext.NewDecoder(bytes.NewBuffer(nil)) }}

// readObject checks that body is exactly one JSON object whose field names are all in known, each
// at most once, and calls field for each, which must read exactly that field's value.
func readObject(body []byte, known []string, field func(int, *jsontext.Decoder) error) error {
	if !json.Valid(body) {
		return errors.New("body is not valid JSON (one JSON object expected)")
	}
	// json.Valid lets invalid UTF-8 through. Stored, it would go out in WebSocket text frames,
	// which must be UTF-8: browsers fail such a connection (1007), again on every reconnect while
	// the message is pending or replayed.
	if !utf8.Valid(body) {
		return errors.New("body is not valid JSON: it must be UTF-8")
	}
	dec := decoders.Get().(*jsontext.Decoder)
	dec.Reset(bytes.NewBuffer(body), tokenizerOptions...)
	defer func() {
		dec.Reset(bytes.NewBuffer(nil)) // let go of body
		decoders.Put(dec)
	}()
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return errors.New("body must be a JSON object")
	}
	var seen uint64
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return errors.New("body is not valid JSON")
		}
		name := tok.String()
		i := slices.Index(known, name)
		if i < 0 {
			return fmt.Errorf("unknown field %q (fields are case-sensitive: %v)", name, known)
		}
		if seen&(1<<i) != 0 {
			return fmt.Errorf("field %q appears twice", name)
		}
		seen |= 1 << i
		if err := field(i, dec); err != nil {
			return err
		}
	}
	return nil // json.Valid has seen the rest: the closing brace and whitespace
}
