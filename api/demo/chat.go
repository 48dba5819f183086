package demo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"
)

// MaxUsernameChars bounds a chat username, in characters.
const MaxUsernameChars = 64

// ChatMessage is what a chat client sends: {"username": "alice", "text": "hi"}.
type ChatMessage struct {
	Username string `json:"username"`
	Text     string `json:"text"`
}

// chatOut is what every member receives for one accepted message.
type chatOut struct {
	Username string `json:"username"`
	Text     string `json:"text"`
	At       string `json:"at"` // RFC 3339, UTC
}

// chatNotice tells members that someone joined or left, and how many are in the room now.
type chatNotice struct {
	System  string `json:"system"`
	Members int    `json:"members"`
}

// chat is GET /chat: one room; every valid message of one member goes to all, sender included.
func (d *Demos) chat(c *gin.Context) {
	if !d.precheck(c) {
		return
	}
	d.serve(c, handler{
		name:      "/chat",
		onMessage: d.chatMessage,
		onStart:   d.room.join,
		onStop:    d.room.leave,
	})
}

func (d *Demos) chatMessage(c *conn, kind int, data []byte) {
	if kind != websocket.TextMessage {
		reply(c, errorBody{Error: `send chat messages as JSON text frames: {"username": "...", "text": "..."}`})
		return
	}
	msg, err := ParseChatMessage(data, d.opts.MaxMessageBytes)
	if err != nil {
		reply(c, errorBody{Error: err.Error()})
		return
	}
	out, err := json.Marshal(chatOut{Username: msg.Username, Text: msg.Text, At: d.opts.Now().UTC().Format(time.RFC3339)})
	if err != nil {
		return // strings only: cannot fail
	}
	d.room.broadcast(out)
}

// ParseChatMessage validates one chat frame: exactly one JSON object, UTF-8, with the
// case-sensitive fields "username" (a string of 1 to 64 characters, no control characters) and
// "text" (a string of 1 to maxText bytes), each once, and nothing else.
func ParseChatMessage(data []byte, maxText int) (ChatMessage, error) {
	var m ChatMessage
	if !json.Valid(data) {
		return m, errors.New(`invalid JSON: send {"username": "...", "text": "..."}`)
	}
	if !utf8.Valid(data) {
		return m, errors.New("invalid JSON: it must be UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return m, errors.New(`a chat message must be a JSON object: {"username": "...", "text": "..."}`)
	}
	var haveUser, haveText bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return m, errors.New("invalid JSON")
		}
		name, _ := tok.(string)
		var dst *string
		var seen *bool
		switch name {
		case "username":
			dst, seen = &m.Username, &haveUser
		case "text":
			dst, seen = &m.Text, &haveText
		default:
			return m, fmt.Errorf(`unknown field %q (fields are "username" and "text")`, name)
		}
		if *seen {
			return m, fmt.Errorf("field %q appears twice", name)
		}
		*seen = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return m, errors.New("invalid JSON")
		}
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, dst) != nil {
			return m, fmt.Errorf("%s must be a string", name)
		}
	}
	switch n := utf8.RuneCountInString(m.Username); {
	case !haveUser || n == 0:
		return m, errors.New("username is required")
	case n > MaxUsernameChars:
		return m, fmt.Errorf("username is longer than %d characters", MaxUsernameChars)
	}
	for _, r := range m.Username {
		if unicode.IsControl(r) {
			return m, errors.New("username must not contain control characters")
		}
	}
	switch {
	case !haveText || m.Text == "":
		return m, errors.New("text is required")
	case len(m.Text) > maxText:
		return m, fmt.Errorf("text is longer than %d bytes", maxText)
	}
	return m, nil
}

// room is the chat room of GET /chat.
//
// Concurrency: safe for concurrent use. mu guards members and also orders fan-outs: a message is
// queued to every member while mu is held, so all members see messages (and join/leave notices)
// in one order. Queueing never blocks (a member whose queue is full is closed with 4001 after mu
// is released), so mu is never held across I/O.
type room struct {
	mu      sync.Mutex
	members map[*conn]struct{}
}

// join adds c and tells everyone, c included, how many members there are now. A connection
// that already stopped (Close raced the upgrade) is not added: leave has run for it already.
func (r *room) join(c *conn) {
	r.mu.Lock()
	select {
	case <-c.done:
		r.mu.Unlock()
		return
	default:
	}
	r.members[c] = struct{}{}
	slow := r.fanOutLocked(notice("member joined", len(r.members)))
	r.mu.Unlock()
	stopSlow(slow)
}

// leave removes c (called once, when c stops) and tells the others.
func (r *room) leave(c *conn) {
	r.mu.Lock()
	if _, ok := r.members[c]; !ok {
		r.mu.Unlock()
		return
	}
	delete(r.members, c)
	slow := r.fanOutLocked(notice("member left", len(r.members)))
	r.mu.Unlock()
	stopSlow(slow)
}

// broadcast sends one encoded message to every member.
func (r *room) broadcast(data []byte) {
	pm := prepare(data)
	r.mu.Lock()
	slow := r.fanOutLocked(pm)
	r.mu.Unlock()
	stopSlow(slow)
}

// reply sends v to c alone (a chat error); a member too slow to take it is closed with 4001.
func reply(c *conn, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	if !c.offer(outFrame{kind: websocket.TextMessage, data: b}) {
		c.stop(CloseSlowConsumer, "slow consumer")
	}
}

// fanOutLocked queues f (a prepared message) to every member and returns those whose queue was
// full.
func (r *room) fanOutLocked(f outFrame) []*conn {
	if f.prepared == nil {
		return nil
	}
	var slow []*conn
	for c := range r.members {
		if !c.offer(f) {
			slow = append(slow, c)
		}
	}
	return slow
}

// stopSlow closes members that could not keep up; their leave runs now, outside room.mu.
func stopSlow(slow []*conn) {
	for _, c := range slow {
		c.stop(CloseSlowConsumer, "slow consumer")
	}
}

func notice(text string, members int) outFrame {
	b, err := json.Marshal(chatNotice{System: text, Members: members})
	if err != nil {
		return outFrame{}
	}
	return prepare(b)
}

// prepare encodes a text frame once for every member; its size counts against each member's
// SendQueueBytes.
func prepare(data []byte) outFrame {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, data)
	if err != nil {
		return outFrame{} // only compression can fail, and it is off
	}
	return outFrame{prepared: pm, size: len(data)}
}
