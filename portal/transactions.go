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
func DecodeRequest(body []byte) (tx string, req any, err error) {
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
// an object, and returns the member's name and value.
func oneMember(b []byte, what string) (string, json.RawMessage, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return "", nil, Errorf(ClientBadRequest, "malformed JSON in %s: %s", what, describeJSONError(err))
	}
	if _, err := dec.Token(); err == nil {
		return "", nil, Errorf(ClientBadRequest, "malformed JSON in %s: data after the object", what)
	}
	if len(m) != 1 {
		return "", nil, Errorf(ClientBadRequest, "%s must be an object with exactly one member naming the message, got %d members", what, len(m))
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
