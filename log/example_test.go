package log_test

import (
	"context"
	"fmt"
	"os"

	"github.com/intermesh/intermesh/log"
)

// A node appends records and pages through them with SearchConstraints.
func Example() {
	dir, err := os.MkdirTemp("", "intermesh-log-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	l, err := log.Open(ctx, log.Options{Dir: dir, Origin: "node0.example"})
	if err != nil {
		panic(err)
	}
	defer l.Close()
	for _, account := range []string{"alice@example.com", "bob@example.com", "carol@example.com"} {
		rec, err := l.Append(ctx, log.Record{Kind: "Account", Account: account, Payload: []byte(`{}`)})
		if err != nil {
			panic(err)
		}
		fmt.Println("appended", rec.Seq, rec.Account, rec.Origin)
	}
	c := log.Constraints{MaxEntries: 2}
	for {
		page, err := l.Range(ctx, c)
		if err != nil {
			panic(err)
		}
		fmt.Println("page of", len(page.Records), "more:", page.PageKey != "")
		if page.PageKey == "" {
			break
		}
		c.PageKey = page.PageKey
	}
	// Output:
	// appended 0 alice@example.com node0.example
	// appended 1 bob@example.com node0.example
	// appended 2 carol@example.com node0.example
	// page of 2 more: true
	// page of 1 more: false
}
