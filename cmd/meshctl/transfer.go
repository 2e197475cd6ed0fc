package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/intermesh/intermesh/portal"
)

// transferOptions are the flags of 'meshctl transfer'.
type transferOptions struct {
	out        string
	from       uint64
	resume     bool
	maxEntries int
	limit      uint64
}

// transferResult is the JSON output of transfer.
type transferResult struct {
	File string
	// From is the index of the first record written, Next the index after
	// the last one: resume with --from Next (or --resume).
	From, Next uint64
	Records    uint64
}

// transferTokenHint says how to get past a portal's refusal of Transfer.
const transferTokenHint = `meshctl: Transfer needs the portal's transfer token: pass --token (or MESHCTL_TOKEN) with
the value of the node's http.transfer_token (environment MESHD_HTTP_TRANSFER_TOKEN), or run
the node with 'meshd run --transfer-public' to let anyone read its log.`

// newTransferCommand is 'meshctl transfer': copy the portal's log to a file.
func newTransferCommand(opts *globalOptions) *cobra.Command {
	var t transferOptions
	cmd := &cobra.Command{
		Use:   "transfer --out FILE [--from N | --resume] [--max-entries N] [--limit N]",
		Short: "Copy the portal's log to a file as JSON lines, one record per line (Transfer)",
		Long: `Page through the portal's log with Transfer and write each record (index, time,
kind, identifier, account, origin, entry and leaf bytes) as one JSON line of FILE.
Transfer needs the portal's transfer token (--token or MESHCTL_TOKEN) unless the
portal makes it public.

--from N starts at log index N and appends to FILE; --resume continues after the
last complete line of FILE. Records must arrive in order without gaps, or the
transfer stops. A progress bar is shown when stderr is a terminal.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if t.out == "" {
				return usagef(cmd, "transfer needs --out FILE")
			}
			if t.resume && cmd.Flags().Changed("from") {
				return usagef(cmd, "--from and --resume cannot be used together")
			}
			if t.maxEntries < 0 {
				return usagef(cmd, "--max-entries must not be negative")
			}
			return runTransfer(cmd, opts, t)
		},
	}
	f := cmd.Flags()
	f.StringVar(&t.out, "out", "", "file to write the records to (JSON lines)")
	f.Uint64Var(&t.from, "from", 0, "log index to start at; the records are appended to --out")
	f.BoolVar(&t.resume, "resume", false, "continue after the last record in --out")
	f.IntVar(&t.maxEntries, "max-entries", 0, "records per Transfer page (0: the portal's limit)")
	f.Uint64Var(&t.limit, "limit", 0, "stop after this many records (0: until the end of the log)")
	return cmd
}

func runTransfer(cmd *cobra.Command, opts *globalOptions, t transferOptions) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if t.resume || t.from > 0 {
		flags = os.O_RDWR | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(t.out, flags, 0o644)
	if err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	defer f.Close()
	if t.resume {
		if t.from, err = resumePoint(f); err != nil {
			return fmt.Errorf("transfer: resuming %s: %w", t.out, err)
		}
	}
	c, err := opts.client()
	if err != nil {
		return err
	}
	bar := newTransferBar(cmd, c, t.from)
	w := bufio.NewWriterSize(f, 1<<20)
	res := transferResult{File: t.out, From: t.from, Next: t.from}
	req := &portal.TransferRequest{From: t.from, SearchConstraints: &portal.SearchConstraints{}}
	for t.limit == 0 || res.Records < t.limit {
		req.SearchConstraints.MaxEntries = t.maxEntries
		if t.limit > 0 && (t.maxEntries == 0 || uint64(t.maxEntries) > t.limit-res.Records) {
			req.SearchConstraints.MaxEntries = int(min(t.limit-res.Records, 1<<30))
		}
		resp, err := c.Transfer(cmd.Context(), req)
		if err != nil {
			if pe := (*portal.Error)(nil); errors.As(err, &pe) && pe.Status == portal.ClientUnauthorized {
				fmt.Fprintln(cmd.ErrOrStderr(), transferTokenHint)
			}
			return c.wrap(fmt.Sprintf("transfer from index %d", res.Next), err)
		}
		for _, item := range resp.DataItems {
			if item.Index == nil || *item.Index != res.Next {
				return fmt.Errorf("transfer: the portal sent record %s where %d was expected", indexString(item.Index), res.Next)
			}
			line, err := json.Marshal(item)
			if err != nil {
				return fmt.Errorf("transfer: encoding record %d: %w", res.Next, err)
			}
			if _, err := w.Write(append(line, '\n')); err != nil {
				return fmt.Errorf("transfer: writing %s: %w", t.out, err)
			}
			res.Next++
			res.Records++
			bar.add()
			if t.limit > 0 && res.Records == t.limit {
				break
			}
		}
		if err := flushFile(w, f); err != nil {
			return fmt.Errorf("transfer: writing %s: %w", t.out, err)
		}
		if resp.PageKey == "" || len(resp.DataItems) == 0 {
			break
		}
		req.SearchConstraints.PageKey = resp.PageKey
	}
	bar.finish()
	return opts.emit(cmd, res, func(w io.Writer) {
		fmt.Fprintf(w, "Wrote %d records (index %d to %d) to %s. Continue later with --resume (or --from %d).\n",
			res.Records, res.From, int64(res.Next)-1, res.File, res.Next)
	})
}

func flushFile(w *bufio.Writer, f *os.File) error {
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Sync()
}

func indexString(i *uint64) string {
	if i == nil {
		return "without an index"
	}
	return fmt.Sprint(*i)
}

// resumePoint finds the last complete line of f, truncates anything after
// it (a line cut short by an interrupted transfer), and returns the index
// after that line's record; 0 for an empty file.
func resumePoint(f *os.File) (uint64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	end, err := lastByte(f, fi.Size(), '\n')
	if err != nil {
		return 0, err
	}
	if end < 0 {
		return 0, f.Truncate(0)
	}
	start, err := lastByte(f, end, '\n')
	if err != nil {
		return 0, err
	}
	line := make([]byte, end-start-1)
	if _, err := f.ReadAt(line, start+1); err != nil {
		return 0, err
	}
	var item portal.DataItem
	if err := json.Unmarshal(line, &item); err != nil {
		return 0, fmt.Errorf("the last line is not a record: %w", err)
	}
	if item.Index == nil {
		return 0, errors.New("the last record has no index")
	}
	if err := f.Truncate(end + 1); err != nil {
		return 0, err
	}
	return *item.Index + 1, nil
}

// lastByte returns the offset of the last b in f before offset before, or -1.
func lastByte(f *os.File, before int64, b byte) (int64, error) {
	buf := make([]byte, 64<<10)
	for end := before; end > 0; {
		start := max(0, end-int64(len(buf)))
		chunk := buf[:end-start]
		if _, err := f.ReadAt(chunk, start); err != nil {
			return 0, err
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] == b {
				return start + int64(i), nil
			}
		}
		end = start
	}
	return -1, nil
}

// transferBar is a progress bar on a terminal, and nothing elsewhere.
type transferBar struct{ bar *progressbar.ProgressBar }

// newTransferBar shows a bar on stderr if it is a terminal. The total comes
// from the portal's latest checkpoint when there is one (the log may have
// grown since; then the bar grows too), otherwise it is a spinner.
func newTransferBar(cmd *cobra.Command, c *portalClient, from uint64) *transferBar {
	f, ok := cmd.ErrOrStderr().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &transferBar{}
	}
	total := int64(-1)
	if st, err := c.Status(cmd.Context()); err == nil {
		if _, size, ok := checkpointSize(st.CheckpointValue); ok && size > from {
			total = int64(size - from)
		}
	}
	return &transferBar{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription("transfer"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("records"),
		progressbar.OptionClearOnFinish(),
	)}
}

func (b *transferBar) add() {
	if b.bar == nil {
		return
	}
	if m := b.bar.GetMax64(); m > 0 && b.bar.State().CurrentNum >= m {
		b.bar.ChangeMax64(m + 1)
	}
	_ = b.bar.Add(1)
}

func (b *transferBar) finish() {
	if b.bar != nil {
		_ = b.bar.Finish()
	}
}
