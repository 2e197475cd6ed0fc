package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
)

// A non-2xx Status comes back as a *portal.Error carrying the status and
// description, and the bearer token is sent.
func TestErrorsCarryStatusAndDescription(t *testing.T) {
	var auth string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"GetResponse":{"Status":404,"StatusDescription":"no entry with identifier X"}}`))
	}))
	defer hs.Close()
	c, err := client.New(hs.URL, client.WithToken("tok"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(context.Background(), &portal.GetRequest{Identifier: "X"})
	var pe *portal.Error
	if !errors.As(err, &pe) || pe.Status != portal.NotFound || pe.Description != "no entry with identifier X" {
		t.Fatalf("got %v", err)
	}
	if auth != "Bearer tok" {
		t.Fatalf("Authorization %q", auth)
	}
}

func TestNewRejectsNonHTTPURLs(t *testing.T) {
	if _, err := client.New("ftp://portal.example.com"); err == nil {
		t.Fatal("ftp URL accepted")
	}
}

func TestARequestToAPortalThatNeverAnswersEndsWithTheContext(t *testing.T) {
	stuck := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-stuck }))
	defer srv.Close()
	defer close(stuck)
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Hello(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Hello to a stuck portal: %v, want the context's deadline", err)
	}
}

func TestAURLThatIsNotAPortalSaysSo(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	defer hs.Close()
	c, err := client.New(hs.URL + "/some/path")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Hello(context.Background())
	if !errors.Is(err, client.ErrNotAPortal) || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "base URL") {
		t.Fatalf("err = %v, want ErrNotAPortal naming the HTTP status and the base URL", err)
	}
	var pe *portal.Error
	if errors.As(err, &pe) {
		t.Errorf("a non-JSON answer reads as a portal Status %d", pe.Status)
	}
}
