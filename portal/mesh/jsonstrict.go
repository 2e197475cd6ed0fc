package mesh

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// object is a JSON object parsed strictly: keys are matched exactly (not
// case-folded as encoding/json does), duplicates are rejected, and the
// order of keys is kept.
type object struct {
	keys   []string
	values map[string]json.RawMessage
}

// parseObject parses data as one JSON object and nothing else.
func parseObject(data []byte, field string) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fieldErr(ErrMalformed, field, "not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fieldErr(ErrMalformed, field, "want a JSON object")
	}
	o := &object{values: map[string]json.RawMessage{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fieldErr(ErrMalformed, field, "bad JSON: %v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fieldErr(ErrMalformed, field, "want an object key")
		}
		if _, dup := o.values[key]; dup {
			return nil, fieldErr(ErrMalformed, field, "duplicate key %q", key)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fieldErr(ErrMalformed, field+"."+key, "bad JSON: %v", err)
		}
		o.keys = append(o.keys, key)
		o.values[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, fieldErr(ErrMalformed, field, "bad JSON: %v", err)
	}
	if err := expectEOF(dec); err != nil {
		return nil, inField(field, err)
	}
	return o, nil
}

// expectEOF fails if dec has anything but whitespace left.
func expectEOF(dec *json.Decoder) error {
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fieldErr(ErrMalformed, "", "trailing data after the JSON value")
	}
	return nil
}

// stringField returns the string value of key, "" and false if absent.
func (o *object) stringField(key, field string) (string, bool, error) {
	raw, ok := o.values[key]
	if !ok {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, fieldErr(ErrMalformed, field+"."+key, "want a string")
	}
	return s, true, nil
}

// unwrapStrings removes line wrapping that the drafts (and the reference
// implementation's documentation mode) put inside JSON string literals: a
// CR or LF inside a string, and the spaces and tabs that follow it. Outside
// strings nothing changes. Raw control characters are not valid inside JSON
// strings, so this never changes the meaning of valid JSON; it is applied to
// a copy of a payload before it is parsed, never to the bytes the digest and
// signature cover.
func unwrapStrings(data []byte) []byte {
	if !bytes.ContainsAny(data, "\r\n") {
		return data
	}
	out := make([]byte, 0, len(data))
	in, esc, skip := false, false, false
	for _, c := range data {
		if skip {
			if c == ' ' || c == '\t' {
				continue
			}
			skip = false
		}
		switch {
		case !in:
			if c == '"' {
				in = true
			}
		case esc:
			esc = false
		case c == '\\':
			esc = true
		case c == '"':
			in = false
		case c == '\n' || c == '\r':
			skip = true
			continue
		}
		out = append(out, c)
	}
	return out
}
