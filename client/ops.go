package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// KickResult is the answer of Kick.
type KickResult struct {
	UserID string `json:"userId"`
	Closed int    `json:"closed"`           // connections closed on all nodes
	Purged int    `json:"purged,omitempty"` // stored messages removed (with purge)
}

// Kick closes every connection of userID on every node with close code 4000 (DELETE
// /deleteClient/:id); with purge it also deletes the user's stored messages. ErrNotFound: the
// user had no live connection and nothing was purged.
func (c *Client) Kick(ctx context.Context, userID string, purge bool) (KickResult, error) {
	var q url.Values
	if purge {
		q = url.Values{"purge": {"true"}}
	}
	resp, err := c.do(ctx, request{method: http.MethodDelete, path: "/deleteClient/" + url.PathEscape(userID), query: q})
	if err != nil {
		return KickResult{}, err
	}
	var out KickResult
	return out, decode(resp.body, &out)
}

// OnlyTotal as ClientsQuery.Limit asks for the number of online users without listing any.
const OnlyTotal = -1

// ClientsQuery pages GET /clients.
type ClientsQuery struct {
	Limit  int // users per page: 0 is the server's default (100), at most 1000; OnlyTotal: none
	Offset int // users to skip
}

// UserConnections is one online user and its number of connections on all nodes.
type UserConnections struct {
	UserID      string `json:"userId"`
	Connections int    `json:"connections"`
}

// ClientsPage is one page of online users, in byte order of user id.
type ClientsPage struct {
	Users []UserConnections `json:"users"`
	Total int               `json:"total"` // online users on all nodes, before paging
}

// Clients lists the online users (GET /clients).
func (c *Client) Clients(ctx context.Context, q ClientsQuery) (ClientsPage, error) {
	v := url.Values{}
	switch {
	case q.Limit == OnlyTotal:
		v.Set("limit", "0")
	case q.Limit > 0:
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Offset > 0 {
		v.Set("offset", strconv.Itoa(q.Offset))
	}
	var out ClientsPage
	return out, c.getJSON(ctx, "/clients", v, &out)
}

// Connection is one live connection of a user.
type Connection struct {
	ID           string    `json:"id"`
	RemoteAddr   string    `json:"remoteAddr"`
	ConnectedAt  time.Time `json:"connectedAt"`
	MessagesSent int64     `json:"messagesSent"` // data and broadcast frames written
}

// UserInfo is a user's live connections on every node and the size of its unread queue.
type UserInfo struct {
	UserID      string       `json:"userId"`
	Connections []Connection `json:"connections"`
	Pending     int          `json:"pending"`
}

// Client describes one user (GET /clients/:id). ErrNotFound: the user has no live connection
// and no stored message.
func (c *Client) Client(ctx context.Context, userID string) (UserInfo, error) {
	var out UserInfo
	return out, c.getJSON(ctx, "/clients/"+url.PathEscape(userID), nil, &out)
}

// Message delivery statuses of MessageStatus.Status.
const (
	StatusPending = "pending" // stored, not yet written to any connection
	StatusSent    = "sent"    // written to at least one connection, not acknowledged
	StatusAcked   = "acked"   // acknowledged by a protocol version 2 client
)

// MessageStatus is one stored message and where it stands.
type MessageStatus struct {
	UserID    string          `json:"userId"`
	ID        string          `json:"id"`
	Status    string          `json:"status"` // StatusPending, StatusSent or StatusAcked
	CreatedAt time.Time       `json:"createdAt"`
	ExpiresAt time.Time       `json:"expiresAt"`
	SentAt    *time.Time      `json:"sentAt,omitempty"`
	AckedAt   *time.Time      `json:"ackedAt,omitempty"`
	PushedAt  *time.Time      `json:"pushedAt,omitempty"` // sent through Web Push
	Data      json.RawMessage `json:"data"`
}

// Status returns one stored message with its delivery status (GET /messages/:userId/:id).
// ErrNotFound: not stored (never was, expired, trimmed or purged).
func (c *Client) Status(ctx context.Context, userID, id string) (MessageStatus, error) {
	var out MessageStatus
	return out, c.getJSON(ctx, "/messages/"+url.PathEscape(userID)+"/"+url.PathEscape(id), nil, &out)
}

// MessagesPage is a page of a user's stored messages, oldest first.
type MessagesPage struct {
	Messages []MessageStatus `json:"messages"`
	Epoch    string          `json:"epoch"` // the store's id space: ids compare only within one
}

// Messages lists the user's stored messages with an id above since ("" or "0": all), at most
// limit of them (0: the server's default, 100; at most 1000) (GET /messages/:userId).
func (c *Client) Messages(ctx context.Context, userID, since string, limit int) (MessagesPage, error) {
	v := url.Values{}
	if since != "" {
		v.Set("since", since)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var out MessagesPage
	return out, c.getJSON(ctx, "/messages/"+url.PathEscape(userID), v, &out)
}

// Health is the answer of GET /healthz: "ok" for each part, or the reason it fails.
type Health struct {
	Status string `json:"status"`
	Store  string `json:"store"`
	Broker string `json:"broker"`
}

// Health asks GET /healthz once. A 503 is an *Error matching ErrUnavailable whose Message is
// the server's body, which names the failing part.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var out Health
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/healthz"})
	if err != nil {
		return out, err
	}
	return out, decode(resp.body, &out)
}
