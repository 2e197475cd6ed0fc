package portal

import (
	"fmt"
	"net/http"
)

// Status codes of the Mesh Portal Protocol, numbered as the reference
// implementation numbers them (seed 001 §7.2), plus the three this project
// adds for malformed and over-limit input (docs/design.md, "Status codes").
const (
	SuccessOK          = 201 // operation completed successfully
	SuccessCreated     = 201 // operation completed successfully, new data item created
	SuccessUpdated     = 202 // operation completed successfully, data item was updated
	RedirectPermanent  = 303 // service has been permanently moved
	RedirectTemporary  = 307 // service has been temporarily moved
	ClientBadRequest   = 400 // the request is malformed (this project)
	ClientUnauthorized = 401 // client is not authorized to perform the request
	NotFound           = 404 // the requested object could not be found
	AlreadyExists      = 409 // the requested object already exists
	TooLarge           = 413 // the request or an object in it is over a size limit (this project)
	TooManyRequests    = 429 // the client is over its request rate (this project)
	ServerInternal     = 500 // an internal error occurred at the server
	ServerOverload     = 503 // the server is overloaded
)

// StatusText returns the reference description of a status code.
func StatusText(status int) string {
	switch status {
	case SuccessOK:
		return "Operation completed successfully"
	case SuccessUpdated:
		return "Operation completed successfully, data item was updated"
	case RedirectPermanent:
		return "Service has been permanently moved"
	case RedirectTemporary:
		return "Service has been temporarily moved"
	case ClientBadRequest:
		return "The request is malformed"
	case ClientUnauthorized:
		return "Client is not authorized to perform specified request"
	case NotFound:
		return "The requested object could not be found"
	case AlreadyExists:
		return "The requested object already exists"
	case TooLarge:
		return "The request is too large"
	case TooManyRequests:
		return "Too many requests"
	case ServerInternal:
		return "An internal error occurred at the server"
	case ServerOverload:
		return "The server cannot handle the request as it is overloaded"
	}
	return fmt.Sprintf("Status %d", status)
}

// HTTPStatus maps a protocol status to the HTTP status that mirrors it:
// every 2xx is 200 OK, any other status is the same number.
func HTTPStatus(status int) int {
	if status >= 200 && status < 300 {
		return http.StatusOK
	}
	if status < 100 || status > 599 {
		return http.StatusInternalServerError
	}
	return status
}

// Error is a failed transaction: the Status and StatusDescription of a
// response whose Status is not 2xx. The server turns an *Error into the
// response; the client returns one for every such response, so callers
// match it with errors.As.
type Error struct {
	// Status is the protocol status code, e.g. NotFound.
	Status int
	// Description is the StatusDescription: what was wrong.
	Description string
	// Err is the underlying cause, if any; it is not sent on the wire.
	Err error
}

// Errorf returns an *Error with the given status and a formatted
// description. A %w verb in format is honoured: the wrapped error is kept as
// the cause.
func Errorf(status int, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Status: status, Description: err.Error(), Err: unwrapOne(err)}
}

func unwrapOne(err error) error {
	if u, ok := err.(interface{ Unwrap() error }); ok {
		return u.Unwrap()
	}
	return nil
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("portal: status %d: %s", e.Status, e.Description)
}

// Unwrap returns the cause, so errors.Is sees through an *Error.
func (e *Error) Unwrap() error { return e.Err }
