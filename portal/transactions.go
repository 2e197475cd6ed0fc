package portal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// The transactions of the Mesh Portal Protocol.
const (
	TxHello           = "Hello"
	TxValidateAccount = "ValidateAccount"
	TxCreateAccount   = "CreateAccount"
	TxDeleteAccount   = "DeleteAccount"
	TxGet             = "Get"
	TxPublish         = "Publish"
	TxStatus          = "Status"
	TxConnectStart    = "ConnectStart"
	TxConnectStatus   = "ConnectStatus"
	TxConnectPending  = "ConnectPending"
	TxConnectComplete = "ConnectComplete"
	TxTransfer        = "Transfer"
	// TxListMessages is this project's extension: the messages
	// (CatalogedPublications) published for an account, paged.
	TxListMessages = "ListMessages"
)

// Transactions lists every transaction, in the drafts' order, then this
// project's extensions.
func Transactions() []string {
	return []string{TxHello, TxValidateAccount, TxCreateAccount, TxDeleteAccount, TxGet, TxPublish,
		TxStatus, TxConnectStart, TxConnectStatus, TxConnectPending, TxConnectComplete, TxTransfer, TxListMessages}
}

// RequestName returns the message name of a transaction's request, e.g.
// "ValidateRequest" for ValidateAccount, or "" for an unknown transaction.
func RequestName(tx string) string {
	switch tx {
	case TxValidateAccount:
		return "ValidateRequest"
	case TxCreateAccount:
		return "CreateRequest"
	case TxDeleteAccount:
		return "DeleteRequest"
	case TxHello, TxGet, TxPublish, TxStatus, TxConnectStart, TxConnectStatus, TxConnectPending,
		TxConnectComplete, TxTransfer, TxListMessages:
		return tx + "Request"
	}
	return ""
}

// ResponseName returns the message name of a transaction's response.
func ResponseName(tx string) string {
	return strings.TrimSuffix(RequestName(tx), "Request") + "Response"
}

// transactionOf returns the transaction whose request is named name.
func transactionOf(requestName string) string {
	for _, tx := range Transactions() {
		if RequestName(tx) == requestName {
			return tx
		}
	}
	return ""
}

// NewRequest returns a pointer to a zero request of the transaction.
func NewRequest(tx string) any {
	switch tx {
	case TxHello:
		return &HelloRequest{}
	case TxValidateAccount:
		return &ValidateRequest{}
	case TxCreateAccount:
		return &CreateRequest{}
	case TxDeleteAccount:
		return &DeleteRequest{}
	case TxGet:
		return &GetRequest{}
	case TxPublish:
		return &PublishRequest{}
	case TxStatus:
		return &StatusRequest{}
	case TxConnectStart:
		return &ConnectStartRequest{}
	case TxConnectStatus:
		return &ConnectStatusRequest{}
	case TxConnectPending:
		return &ConnectPendingRequest{}
	case TxConnectComplete:
		return &ConnectCompleteRequest{}
	case TxTransfer:
		return &TransferRequest{}
	case TxListMessages:
		return &ListMessagesRequest{}
	}
	return nil
}

// NewResponse returns a pointer to a zero response of the transaction.
func NewResponse(tx string) Response {
	switch tx {
	case TxHello:
		return &HelloResponse{}
	case TxValidateAccount:
		return &ValidateResponse{}
	case TxCreateAccount:
		return &CreateResponse{}
	case TxDeleteAccount:
		return &DeleteResponse{}
	case TxGet:
		return &GetResponse{}
	case TxPublish:
		return &PublishResponse{}
	case TxStatus:
		return &StatusResponse{}
	case TxConnectStart:
		return &ConnectStartResponse{}
	case TxConnectStatus:
		return &ConnectStatusResponse{}
	case TxConnectPending:
		return &ConnectPendingResponse{}
	case TxConnectComplete:
		return &ConnectCompleteResponse{}
	case TxTransfer:
		return &TransferResponse{}
	case TxListMessages:
		return &ListMessagesResponse{}
	}
	return &MeshResponse{}
}

// Response is implemented by every response message.
type Response interface {
	// Response returns the embedded status fields.
	Response() *MeshResponse
}

// DecodeRequest parses a request body, accepting both {"<Name>Request":{...}}
// and {"<Transaction>":{"<Name>Request":{...}}}. It returns the transaction
// name and a pointer to the typed request. Every error is an *Error with
// status ClientBadRequest whose description says what was wrong; the
// transaction is returned whenever it could be recognized.
//
// A body in the usual form (member names of plain letters, nothing after
// the object but whitespace) is decoded in one pass, straight into the
// typed request; any other body, and any body that does not decode, goes
// through decodeRequestSlow, which accepts and refuses exactly the same
// bodies and says what is wrong.
func DecodeRequest(body []byte) (tx string, req any, err error) {
	if tx, req, ok := decodeRequestFast(body); ok {
		return tx, req, nil
	}
	return decodeRequestSlow(body)
}

// decodeRequestFast decodes {"<Name>Request":{...}} or
// {"<Transaction>":{"<Name>Request":{...}}} whose member names are plain
// letters, decoding the request's bytes once (json.Unmarshal checks them
// and fills the request). It reports false, leaving the verdict and the
// error to decodeRequestSlow, for every other body and every failure.
func decodeRequestFast(body []byte) (string, any, bool) {
	name, inner, ok := soleMember(body)
	if !ok {
		return "", nil, false
	}
	levels := 1 // the levels of nesting around inner
	tx := transactionOf(name)
	if tx == "" {
		if RequestName(name) == "" {
			return "", nil, false
		}
		tx = name
		wrapped, body2, ok := soleMember(inner)
		if !ok || wrapped != RequestName(tx) {
			return "", nil, false
		}
		inner, levels = body2, 2
	}
	req := NewRequest(tx)
	if err := json.Unmarshal(inner, req); err != nil {
		return "", nil, false
	}
	// encoding/json refuses JSON nested deeper than maxJSONDepth; the
	// wrapping must not take the body past it unseen. A value that deep
	// has at least two bytes a level.
	if len(inner) >= 2*(maxJSONDepth-levels) && nestingDepth(inner) > maxJSONDepth-levels {
		return "", nil, false
	}
	return tx, req, true
}

// maxJSONDepth is the deepest nesting of arrays and objects that
// encoding/json accepts.
const maxJSONDepth = 10000

// nestingDepth returns the deepest nesting of arrays and objects in the
// valid JSON b.
func nestingDepth(b []byte) int {
	depth, deepest := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			if depth++; depth > deepest {
				deepest = depth
			}
		case '}', ']':
			depth--
		}
	}
	return deepest
}

// soleMember splits b of the form {"<name>":{...}} (whitespace allowed
// between the tokens and around the object) into the name, which must be
// plain ASCII letters, and the value: everything between the colon and
// the object's last closing brace, trimmed, which must start with '{'. It
// does not check the value: the caller's json.Unmarshal of it does, and if
// the value is one valid JSON object, b is a valid object with that one
// member and nothing after it.
func soleMember(b []byte) (string, []byte, bool) {
	i := skipJSONSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", nil, false
	}
	i = skipJSONSpace(b, i+1)
	if i >= len(b) || b[i] != '"' {
		return "", nil, false
	}
	j := i + 1
	for j < len(b) && ('a' <= b[j] && b[j] <= 'z' || 'A' <= b[j] && b[j] <= 'Z') {
		j++
	}
	if j == i+1 || j >= len(b) || b[j] != '"' {
		return "", nil, false
	}
	k := skipJSONSpace(b, j+1)
	if k >= len(b) || b[k] != ':' {
		return "", nil, false
	}
	k = skipJSONSpace(b, k+1)
	end := trimJSONSpaceRight(b, k)
	if end <= k || b[end-1] != '}' {
		return "", nil, false
	}
	end = trimJSONSpaceRight(b[:end-1], k)
	if end <= k || b[k] != '{' {
		return "", nil, false
	}
	return string(b[i+1 : j]), b[k:end], true
}

// skipJSONSpace returns the index of the first byte of b at or after i
// that is not JSON whitespace (space, tab, CR, LF), or len(b).
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && isJSONSpace(b[i]) {
		i++
	}
	return i
}

// trimJSONSpaceRight returns the end of b with trailing JSON whitespace
// removed, going no lower than from.
func trimJSONSpaceRight(b []byte, from int) int {
	end := len(b)
	for end > from && isJSONSpace(b[end-1]) {
		end--
	}
	return end
}

// isJSONSpace reports whether c is whitespace in JSON's grammar.
func isJSONSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

// decodeRequestSlow is the general form of DecodeRequest: the body is
// decoded as a JSON object into a map of raw messages, checked, and the
// request decoded from its member. It takes every body DecodeRequest
// accepts and writes every error it returns.
func decodeRequestSlow(body []byte) (tx string, req any, err error) {
	name, inner, err := oneMember(body, "request")
	if err != nil {
		return "", nil, err
	}
	if tx = transactionOf(name); tx == "" {
		if RequestName(name) == "" {
			return "", nil, Errorf(ClientBadRequest, "unknown transaction %q: want one of %s", name, strings.Join(Transactions(), ", "))
		}
		tx = name
		wrapped, body2, err := oneMember(inner, tx)
		if err != nil {
			return tx, nil, err
		}
		if wrapped != RequestName(tx) {
			return tx, nil, Errorf(ClientBadRequest, "transaction %s carries %q, want %q", tx, wrapped, RequestName(tx))
		}
		inner = body2
	}
	req = NewRequest(tx)
	dec := json.NewDecoder(bytes.NewReader(inner))
	if err := dec.Decode(req); err != nil {
		return tx, nil, Errorf(ClientBadRequest, "%s: %s", RequestName(tx), describeJSONError(err))
	}
	return tx, req, nil
}

// oneMember parses b as a JSON object with exactly one member whose value is
// an object, and nothing after it but white space, and returns the member's
// name and value. A name given twice is two members: which one counts
// would be the decoder's choice.
func oneMember(b []byte, what string) (string, json.RawMessage, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return "", nil, Errorf(ClientBadRequest, "malformed JSON in %s: %s", what, describeJSONError(err))
	}
	if skipJSONSpace(b, int(dec.InputOffset())) < len(b) {
		return "", nil, Errorf(ClientBadRequest, "malformed JSON in %s: data after the object", what)
	}
	if n := membersOf(b); n != 1 { // the map counts a repeated name once
		return "", nil, Errorf(ClientBadRequest, "%s must be an object with exactly one member naming the message, got %d members", what, n)
	}
	for k, v := range m {
		v = bytes.TrimSpace(v)
		if len(v) == 0 || v[0] != '{' {
			return k, nil, Errorf(ClientBadRequest, "%s %q must be a JSON object", what, k)
		}
		return k, v, nil
	}
	panic("unreachable")
}

// membersOf counts the members of the JSON object b (valid JSON), a name
// given twice counted twice.
func membersOf(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		return 0
	}
	n := 0
	for dec.More() {
		var v json.RawMessage
		if _, err := dec.Token(); err != nil { // the name
			return n
		}
		if err := dec.Decode(&v); err != nil {
			return n
		}
		n++
	}
	return n
}

// describeJSONError turns a decoding error into a sentence naming the field.
func describeJSONError(err error) string {
	if errors.Is(err, ErrNotEntry) {
		return err.Error()
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := strings.ReplaceAll(te.Field, "MeshRequest.", "")
		if field == "" {
			field = "value"
		}
		return fmt.Sprintf("field %s: got JSON %s, want %s", field, te.Value, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d: %s", se.Offset, se.Error())
	}
	if err.Error() == "EOF" {
		return "empty body"
	}
	return err.Error()
}

// EncodeRequest returns the wire form of a request: {"<Name>Request": req}.
func EncodeRequest(tx string, req any) ([]byte, error) {
	name := RequestName(tx)
	if name == "" {
		return nil, fmt.Errorf("portal: unknown transaction %q", tx)
	}
	return json.Marshal(map[string]any{name: req})
}

// EncodeResponse returns the wire form of a response: {"<Name>Response": resp}.
func EncodeResponse(tx string, resp Response) ([]byte, error) {
	name := "MeshResponse"
	if RequestName(tx) != "" {
		name = ResponseName(tx)
	}
	return json.Marshal(map[string]any{name: resp})
}

// DecodeResponse parses a response body of transaction tx. It accepts the
// transaction's own response or a bare MeshResponse (the drafts allow a
// service to answer any request with a parent message).
func DecodeResponse(tx string, body []byte) (Response, error) {
	name, inner, err := oneMember(body, "response")
	if err != nil {
		return nil, err
	}
	var resp Response
	switch name {
	case ResponseName(tx):
		resp = NewResponse(tx)
	case "MeshResponse":
		resp = &MeshResponse{}
	default:
		return nil, fmt.Errorf("portal: response to %s is %q, want %q", tx, name, ResponseName(tx))
	}
	if err := json.Unmarshal(inner, resp); err != nil {
		return nil, fmt.Errorf("portal: decoding %s: %w", name, err)
	}
	return resp, nil
}
