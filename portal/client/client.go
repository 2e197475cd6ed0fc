// Package client is the Go client of the Mesh Portal Protocol: one method per
// transaction, with the typed messages of package portal. A response whose
// Status is not 2xx is returned as a *portal.Error (match it with errors.As),
// carrying the Status and StatusDescription.
//
//	c, _ := client.New("https://portal.example.com", client.WithToken(token))
//	resp, err := c.Get(ctx, &portal.GetRequest{Account: "alice@example.com"})
//	var pe *portal.Error
//	if errors.As(err, &pe) && pe.Status == portal.NotFound { ... }
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/intermesh/intermesh/portal"
)

// MaxResponseBytes bounds the size of a response the client reads.
const MaxResponseBytes = 64 << 20

// Client talks to one portal.
type Client struct {
	endpoint string
	base     string
	http     *http.Client
	token    string
}

// Option configures a Client.
type Option func(*Client)

// DefaultTimeout bounds each request of a client made without
// WithHTTPClient, so that a portal that stops answering cannot hang its
// caller; a context deadline may cut it shorter.
const DefaultTimeout = time.Minute

// WithHTTPClient sets the HTTP client (default: one whose requests time out
// after DefaultTimeout).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithToken sends "Authorization: Bearer token" with every request (the
// portal's Transfer or admin token).
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// New returns a client of the portal at baseURL (e.g.
// "https://portal.example.com"); requests go to baseURL + /.well-known/mmm/.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: portal URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: portal URL %q: want an http or https URL", baseURL)
	}
	base := strings.TrimSuffix(u.String(), "/")
	c := &Client{base: base, endpoint: base + portal.WellKnownPath, http: &http.Client{Timeout: DefaultTimeout}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Do runs one transaction: it sends req (a pointer to the transaction's
// request type) and returns the response. A response with a non-2xx Status
// is returned together with a *portal.Error.
func (c *Client) Do(ctx context.Context, tx string, req any) (portal.Response, error) {
	body, err := portal.EncodeRequest(tx, req)
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", tx, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.token)
	}
	hresp, err := c.http.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", tx, err)
	}
	defer hresp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(hresp.Body, MaxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("client: %s: reading response: %w", tx, err)
	}
	if !json.Valid(rb) {
		return nil, fmt.Errorf("%w: %s answered HTTP %s with %q: is %s the portal's base URL (http://host:port)?",
			ErrNotAPortal, c.endpoint, hresp.Status, excerpt(rb), c.base)
	}
	resp, err := portal.DecodeResponse(tx, rb)
	if err != nil {
		return nil, fmt.Errorf("client: %s: HTTP %s: %w", tx, hresp.Status, err)
	}
	if st := resp.Response(); st.Status < 200 || st.Status > 299 {
		return resp, &portal.Error{Status: st.Status, Description: st.StatusDescription}
	}
	return resp, nil
}

// do runs a transaction and converts the response to its type.
func do[R portal.Response](ctx context.Context, c *Client, tx string, req any) (R, error) {
	var zero R
	resp, err := c.Do(ctx, tx, req)
	r, ok := resp.(R)
	if err != nil {
		if ok {
			return r, err // the portal's answer to a refusal (a NotFound Get carries proofs)
		}
		return zero, err
	}
	if !ok {
		return zero, fmt.Errorf("client: %s: the portal answered with a bare %T", tx, resp)
	}
	return r, nil
}

// Hello asks for the portal's protocol versions.
func (c *Client) Hello(ctx context.Context) (*portal.HelloResponse, error) {
	return do[*portal.HelloResponse](ctx, c, portal.TxHello, &portal.HelloRequest{})
}

// ValidateAccount asks whether an account name is acceptable.
func (c *Client) ValidateAccount(ctx context.Context, req *portal.ValidateRequest) (*portal.ValidateResponse, error) {
	return do[*portal.ValidateResponse](ctx, c, portal.TxValidateAccount, req)
}

// CreateAccount creates an account bound to a signed profile.
func (c *Client) CreateAccount(ctx context.Context, req *portal.CreateRequest) (*portal.CreateResponse, error) {
	return do[*portal.CreateResponse](ctx, c, portal.TxCreateAccount, req)
}

// DeleteAccount deletes an account.
func (c *Client) DeleteAccount(ctx context.Context, req *portal.DeleteRequest) (*portal.DeleteResponse, error) {
	return do[*portal.DeleteResponse](ctx, c, portal.TxDeleteAccount, req)
}

// Get looks up entries by identifier or account.
func (c *Client) Get(ctx context.Context, req *portal.GetRequest) (*portal.GetResponse, error) {
	return do[*portal.GetResponse](ctx, c, portal.TxGet, req)
}

// Publish publishes a signed profile or an escrow entry.
func (c *Client) Publish(ctx context.Context, req *portal.PublishRequest) (*portal.PublishResponse, error) {
	return do[*portal.PublishResponse](ctx, c, portal.TxPublish, req)
}

// Status asks for the state of the log and its checkpoints.
func (c *Client) Status(ctx context.Context) (*portal.StatusResponse, error) {
	return do[*portal.StatusResponse](ctx, c, portal.TxStatus, &portal.StatusRequest{})
}

// ConnectStart posts a device's signed connection request.
func (c *Client) ConnectStart(ctx context.Context, req *portal.ConnectStartRequest) (*portal.ConnectStartResponse, error) {
	return do[*portal.ConnectStartResponse](ctx, c, portal.TxConnectStart, req)
}

// ConnectStatus asks for the result of a connection request.
func (c *Client) ConnectStatus(ctx context.Context, req *portal.ConnectStatusRequest) (*portal.ConnectStatusResponse, error) {
	return do[*portal.ConnectStatusResponse](ctx, c, portal.TxConnectStatus, req)
}

// ConnectPending lists an account's pending connection requests.
func (c *Client) ConnectPending(ctx context.Context, req *portal.ConnectPendingRequest) (*portal.ConnectPendingResponse, error) {
	return do[*portal.ConnectPendingResponse](ctx, c, portal.TxConnectPending, req)
}

// ConnectComplete posts the signed result of a connection request.
func (c *Client) ConnectComplete(ctx context.Context, req *portal.ConnectCompleteRequest) (*portal.ConnectCompleteResponse, error) {
	return do[*portal.ConnectCompleteResponse](ctx, c, portal.TxConnectComplete, req)
}

// Transfer asks for one page of the log.
func (c *Client) Transfer(ctx context.Context, req *portal.TransferRequest) (*portal.TransferResponse, error) {
	return do[*portal.TransferResponse](ctx, c, portal.TxTransfer, req)
}

// TransferAll pages through the log from index from with Transfer, calling
// fn for each item in order, until the portal has no more or fn fails.
func (c *Client) TransferAll(ctx context.Context, from uint64, maxEntries int, fn func(portal.DataItem) error) error {
	req := &portal.TransferRequest{From: from, SearchConstraints: &portal.SearchConstraints{MaxEntries: maxEntries}}
	for {
		resp, err := c.Transfer(ctx, req)
		if err != nil {
			return err
		}
		for _, item := range resp.DataItems {
			if err := fn(item); err != nil {
				return err
			}
		}
		if resp.PageKey == "" {
			return nil
		}
		req.SearchConstraints.PageKey = resp.PageKey
	}
}

// ErrNoCheckpoint is returned by Checkpoint when the portal has none yet.
var ErrNoCheckpoint = errors.New("client: the portal has no checkpoint yet")

// ErrNotAPortal reports an answer that is not JSON at all: the URL is not a
// Mesh portal's (a wrong path, another server).
var ErrNotAPortal = errors.New("client: not a Mesh portal")

// excerpt is the start of a body, for an error message.
func excerpt(b []byte) string {
	const n = 60
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// Checkpoint fetches the latest signed checkpoint note (GET /checkpoint).
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/checkpoint", nil)
	if err != nil {
		return nil, fmt.Errorf("client: checkpoint: %w", err)
	}
	hresp, err := c.http.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("client: checkpoint: %w", err)
	}
	defer hresp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("client: checkpoint: %w", err)
	}
	switch hresp.StatusCode {
	case http.StatusOK:
		return b, nil
	case http.StatusNotFound:
		return nil, ErrNoCheckpoint
	}
	return nil, fmt.Errorf("client: checkpoint: HTTP %s: %s", hresp.Status, bytes.TrimSpace(b))
}

// ListMessages lists one page of the messages (CatalogedPublications)
// published for an account, oldest first; req.Proof is an AccountProof for
// ListMessages.
func (c *Client) ListMessages(ctx context.Context, req *portal.ListMessagesRequest) (*portal.ListMessagesResponse, error) {
	return do[*portal.ListMessagesResponse](ctx, c, portal.TxListMessages, req)
}

// ListAllMessages pages through an account's messages with ListMessages
// (req's Proof on every page) and returns every item, oldest first. It
// sets req's PageKey.
func (c *Client) ListAllMessages(ctx context.Context, req *portal.ListMessagesRequest) ([]portal.DataItem, error) {
	if req.SearchConstraints == nil {
		req.SearchConstraints = &portal.SearchConstraints{}
	}
	var items []portal.DataItem
	for {
		resp, err := c.ListMessages(ctx, req)
		if err != nil {
			return nil, err
		}
		items = append(items, resp.DataItems...)
		if resp.PageKey == "" {
			return items, nil
		}
		req.SearchConstraints.PageKey = resp.PageKey
	}
}
