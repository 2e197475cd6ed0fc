package mesh

import "encoding/json"

// One-pass splitting of JSON that encoding/json has already checked.
//
// ParseEnvelope checks the whole envelope once with json.Valid; its parts
// are then split with the functions below, which only find where values
// begin and end (they do not check the grammar again), instead of running
// a json.Decoder or json.Unmarshal over each part. Anything they do not
// expect (an escaped or non-ASCII key, a duplicate key, a value of another
// kind) makes them report false, and the caller falls back to the general
// decoder, which gives the same result or the same error as before.

// isJSONSpace reports whether c is whitespace in JSON's grammar.
func isJSONSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

// skipJSONSpace returns the index of the first byte of b at or after i
// that is not JSON whitespace, or len(b).
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && isJSONSpace(b[i]) {
		i++
	}
	return i
}

// trimJSONSpace returns b without leading and trailing JSON whitespace.
func trimJSONSpace(b []byte) []byte {
	b = b[skipJSONSpace(b, 0):]
	for len(b) > 0 && isJSONSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// skipString returns the index just past the JSON string whose opening
// quote is b[i], or len(b) if it is not closed.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index just past the valid JSON value that starts
// at b[i] (not whitespace).
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && !isJSONSpace(b[i]) && b[i] != ',' && b[i] != ']' && b[i] != '}' {
		i++
	}
	return i
}

// plainString returns the value of the JSON string literal raw if it has
// no escapes and only printable ASCII, so that its value is its bytes.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	for _, c := range raw[1 : len(raw)-1] {
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return "", false
		}
	}
	return string(raw[1 : len(raw)-1]), true
}

// unmarshalString is json.Unmarshal(raw, s), without running the decoder
// over a plain string (see plainString).
func unmarshalString(raw []byte, s *string) error {
	if v, ok := plainString(raw); ok {
		*s = v
		return nil
	}
	return json.Unmarshal(raw, s)
}

// validElements returns the elements of the valid JSON array b (no
// surrounding whitespace), each without surrounding whitespace, as
// json.Unmarshal into []json.RawMessage would (but sharing b's bytes).
// It reports false if b is not an array.
func validElements(b []byte) ([]json.RawMessage, bool) {
	if len(b) == 0 || b[0] != '[' {
		return nil, false
	}
	out := []json.RawMessage{}
	i := skipJSONSpace(b, 1)
	if i < len(b) && b[i] == ']' {
		return out, i+1 == len(b)
	}
	for i < len(b) {
		end := skipValue(b, i)
		out = append(out, b[i:end])
		if i = skipJSONSpace(b, end); i >= len(b) {
			break
		}
		switch b[i] {
		case ']':
			return out, i+1 == len(b)
		case ',':
			i = skipJSONSpace(b, i+1)
		default:
			return nil, false
		}
	}
	return nil, false
}

// validObject returns the members of the valid JSON object b (no
// surrounding whitespace) as parseObject would (but sharing b's bytes).
// It reports false if b is not an object, or a key is not a plain string
// (see plainString) or is repeated: parseObject then decides.
func validObject(b []byte) (*object, bool) {
	if len(b) == 0 || b[0] != '{' {
		return nil, false
	}
	o := &object{values: map[string]json.RawMessage{}}
	i := skipJSONSpace(b, 1)
	if i < len(b) && b[i] == '}' {
		return o, i+1 == len(b)
	}
	for i < len(b) && b[i] == '"' {
		end := skipString(b, i)
		key, ok := plainString(b[i:end])
		if _, dup := o.values[key]; !ok || dup {
			return nil, false
		}
		if i = skipJSONSpace(b, end); i >= len(b) || b[i] != ':' {
			return nil, false
		}
		if i = skipJSONSpace(b, i+1); i >= len(b) {
			return nil, false
		}
		end = skipValue(b, i)
		o.keys = append(o.keys, key)
		o.values[key] = b[i:end]
		if i = skipJSONSpace(b, end); i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case '}':
			return o, i+1 == len(b)
		case ',':
			i = skipJSONSpace(b, i+1)
		default:
			return nil, false
		}
	}
	return nil, false
}

// parseValidObject is parseObject for data that is valid JSON: a plain
// object is split in one pass (validObject), anything else is left to
// parseObject.
func parseValidObject(data []byte, field string) (*object, error) {
	if o, ok := validObject(data); ok {
		return o, nil
	}
	return parseObject(data, field)
}
