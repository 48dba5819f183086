package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"pushd/module"
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
// case-sensitive fields, nothing but whitespace after it. Field names are matched exactly because
// encoding/json alone would accept "TTL" for "ttl" and silently take the last of duplicate keys.
func ParsePublish(body []byte) (PublishRequest, error) {
	var req PublishRequest
	fields, err := parseObject(body, "userId", "userIds", "data", "ttl")
	if err != nil {
		return req, err
	}
	one, hasOne := fields["userId"]
	many, hasMany := fields["userIds"]
	switch {
	case hasOne && hasMany:
		return req, errors.New("give either userId or userIds, not both")
	case hasOne:
		var id string
		if err := decodeString(one, &id); err != nil {
			return req, errors.New("userId must be a string")
		}
		if !module.ValidUserID(id) {
			return req, fmt.Errorf("userId: %w", module.ErrBadUserID)
		}
		req.UserIDs = []string{id}
	case hasMany:
		ids, err := parseUserIDs(many)
		if err != nil {
			return req, err
		}
		req.UserIDs = ids
	default:
		return req, errors.New("userId or userIds is required")
	}
	req.Data, err = parseData(fields)
	if err != nil {
		return req, err
	}
	if raw, ok := fields["ttl"]; ok {
		var s string
		if err := decodeString(raw, &s); err != nil {
			return req, errors.New(`ttl must be a string holding a Go duration such as "90s" or "24h"`)
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return req, fmt.Errorf(`ttl %q is not a positive Go duration such as "90s" or "24h"`, s)
		}
		req.TTL = d
	}
	return req, nil
}

// ParseBroadcast validates a POST /broadcast body: {"data": <any JSON but null>}.
func ParseBroadcast(body []byte) (json.RawMessage, error) {
	fields, err := parseObject(body, "data")
	if err != nil {
		return nil, err
	}
	return parseData(fields)
}

func parseUserIDs(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, errors.New("userIds must be a list of strings")
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("userIds must be a list of strings")
	}
	if len(list) == 0 {
		return nil, errors.New("userIds must not be empty")
	}
	if len(list) > MaxBatchUsers {
		return nil, fmt.Errorf("userIds holds %d ids; at most %d are allowed", len(list), MaxBatchUsers)
	}
	seen := make(map[string]struct{}, len(list))
	ids := make([]string, 0, len(list))
	for i, item := range list {
		var id string
		if err := decodeString(item, &id); err != nil {
			return nil, fmt.Errorf("userIds[%d] must be a string", i)
		}
		if !module.ValidUserID(id) {
			return nil, fmt.Errorf("userIds[%d]: %w", i, module.ErrBadUserID)
		}
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		ids = append(ids, id)
	}
	return ids, nil
}

func parseData(fields map[string]json.RawMessage) (json.RawMessage, error) {
	raw, ok := fields["data"]
	if !ok {
		return nil, errors.New("data is required")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, errors.New("data is not valid JSON")
	}
	if bytes.Equal(buf.Bytes(), []byte("null")) {
		return nil, errors.New("data must not be null")
	}
	return buf.Bytes(), nil
}

// decodeString decodes a JSON string (and only a string: null is refused too).
func decodeString(raw json.RawMessage, dst *string) error {
	if len(raw) == 0 || raw[0] != '"' {
		return errors.New("not a string")
	}
	return json.Unmarshal(raw, dst)
}

// parseObject splits a body that must be exactly one JSON object into its fields, refusing
// malformed JSON, anything but whitespace after the object, unknown or duplicate field names.
func parseObject(body []byte, known ...string) (map[string]json.RawMessage, error) {
	if !json.Valid(body) {
		return nil, errors.New("body is not valid JSON (one JSON object expected)")
	}
	// json.Valid and json.Compact let invalid UTF-8 through unchanged. Stored, it would go out in
	// WebSocket text frames, which must be UTF-8: browsers fail such a connection (1007), again
	// on every reconnect while the message is pending or replayed.
	if !utf8.Valid(body) {
		return nil, errors.New("body is not valid JSON: it must be UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, errors.New("body must be a JSON object")
	}
	fields := make(map[string]json.RawMessage, len(known))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("body is not valid JSON")
		}
		name, _ := tok.(string)
		if !contains(known, name) {
			return nil, fmt.Errorf("unknown field %q (fields are case-sensitive: %v)", name, known)
		}
		if _, dup := fields[name]; dup {
			return nil, fmt.Errorf("field %q appears twice", name)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, errors.New("body is not valid JSON")
		}
		fields[name] = raw
	}
	return fields, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
