package loadgen

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// The kinds of acknowledged write.
const (
	KindCreateAccount = "CreateAccount"
	KindPublish       = "Publish"
)

// Write is one acknowledged write, as a line of the acks file:
//
//	{"portal":"http://127.0.0.1:8080","kind":"Publish","account":"load-1a2b3c4d-7@example.com",
//	 "identifier":"MB2G-...","digest":"<base64url PayloadDigest>","time":"2026-11-28T23:40:01Z"}
//
// The digest (SHA-512 of the envelope's payload, from its trailer) tells
// the versions of one profile apart.
type Write struct {
	Portal     string    `json:"portal"`
	Kind       string    `json:"kind"` // KindCreateAccount or KindPublish
	Account    string    `json:"account"`
	Identifier string    `json:"identifier"`
	Digest     string    `json:"digest"`
	Time       time.Time `json:"time"`
}

// ackWriter appends acknowledged writes to the acks file; safe for
// concurrent use.
type ackWriter struct {
	path string
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	err  error
}

func openAckWriter(path string) (*ackWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("acks file: %w", err)
	}
	return &ackWriter{path: path, f: f, w: bufio.NewWriter(f)}, nil
}

func (a *ackWriter) add(w Write) {
	b, err := json.Marshal(w)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		b = append(b, '\n')
		_, err = a.w.Write(b)
	}
	if a.err == nil {
		a.err = err
	}
}

// Close flushes and closes the file and returns the first write error.
func (a *ackWriter) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	err := errors.Join(a.err, a.w.Flush(), a.f.Close())
	if err != nil {
		return fmt.Errorf("acks file %s: %w", a.path, err)
	}
	return nil
}

// ReadAcks reads an acks file. Every line must be a Write with its portal,
// identifier and digest; empty lines are skipped.
func ReadAcks(path string) ([]Write, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("acks file: %w", err)
	}
	defer f.Close()
	var out []Write
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var w Write
		if err := json.Unmarshal(sc.Bytes(), &w); err != nil {
			return nil, fmt.Errorf("acks file %s line %d: %w", path, line, err)
		}
		if w.Portal == "" || w.Identifier == "" || w.Digest == "" {
			return nil, fmt.Errorf("acks file %s line %d: portal, identifier and digest are required", path, line)
		}
		out = append(out, w)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("acks file %s: %w", path, err)
	}
	return out, nil
}
