package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"

	"github.com/coupondrop/coupon"
	"github.com/gofiber/fiber/v2"
)

// Every JSON route reads its body through jsonBody and decodes it with
// decodeObject: the one strict mechanism of the API (README, "Strict input").

// jsonBody returns the body of a request to a JSON route as the client sent
// it: fasthttp's raw bytes, never decoded (fiber's c.Body() inflates any
// Content-Encoding without bound). Any Content-Encoding is refused, and a
// non-empty body needs Content-Type application/json: both 415
// unsupported_media_type. The size limit (413) applies before, to these
// same bytes.
func jsonBody(c *fiber.Ctx) ([]byte, error) {
	req := c.Request()
	// Header names are normalized on parse: ContentEncoding sees every
	// spelling. (And were one missed, the body would still be refused as
	// invalid JSON, never inflated.)
	if ce := req.Header.ContentEncoding(); len(ce) > 0 {
		c.Set(fiber.HeaderAcceptEncoding, "identity")
		return nil, coupon.Errorf(coupon.EUNSUPPORTED,
			"Content-Encoding %q is not accepted: send the JSON body uncompressed, without Content-Encoding.", echo(string(ce)))
	}
	body := req.Body()
	if len(body) > 0 && !isJSONMediaType(req.Header.ContentType()) {
		ct := req.Header.ContentType()
		if len(ct) == 0 {
			return nil, coupon.Errorf(coupon.EUNSUPPORTED, "The request body needs Content-Type: application/json.")
		}
		return nil, coupon.Errorf(coupon.EUNSUPPORTED,
			"Content-Type %q is not accepted: send the body as application/json (charset utf-8, if named).", echo(string(ct)))
	}
	return body, nil
}

// isJSONMediaType reports whether ct is application/json, optionally with
// the one parameter charset=utf-8 (names and values case-insensitive, the
// value optionally quoted). It does not allocate.
func isJSONMediaType(ct []byte) bool {
	const mt = "application/json"
	if string(ct) == mt || string(ct) == "application/json; charset=utf-8" { // the usual spellings, fast
		return true
	}
	ct = bytes.TrimSpace(ct)
	if len(ct) < len(mt) || !strings.EqualFold(string(ct[:len(mt)]), mt) {
		return false
	}
	rest := bytes.TrimSpace(ct[len(mt):])
	if len(rest) == 0 {
		return true
	}
	if rest[0] != ';' {
		return false
	}
	rest = bytes.TrimSpace(rest[1:])
	const cs = "charset="
	if len(rest) < len(cs) || !strings.EqualFold(string(rest[:len(cs)]), cs) {
		return false
	}
	v := rest[len(cs):]
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return strings.EqualFold(string(v), "utf-8")
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// objectFields caches, per request struct type, the JSON name of each field.
var objectFields sync.Map // reflect.Type -> []string

// fieldNames returns the JSON names of t's fields (the json tag's name,
// else the Go name), in order.
func fieldNames(t reflect.Type) []string {
	if names, ok := objectFields.Load(t); ok {
		return names.([]string)
	}
	names := make([]string, t.NumField())
	for i := range names {
		f := t.Field(i)
		names[i] = f.Name
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag != "" {
			names[i] = tag
		}
	}
	objectFields.Store(t, names)
	return names
}

// decodeObject decodes body, a JSON object, strictly into v, a pointer to a
// struct (at most 64 fields) whose fields are the object's members by their
// json tag:
//
//   - keys match field names exactly (case-sensitive); an unknown key is
//     refused, naming it;
//   - a key given twice is refused, naming it;
//   - an empty body, invalid JSON and a non-object are refused.
//
// json.RawMessage fields receive the member's raw value (aliasing body; an
// absent member leaves the field nil, null is "null"), so each field gets
// its own check and a message naming it; other fields are decoded with
// encoding/json. Every refusal is EINVALID; example is a valid body for the
// messages.
func decodeObject(body []byte, v any, example string) error {
	i := skipSpace(body, 0)
	if i == len(body) {
		return coupon.Errorf(coupon.EINVALID, "The request body is empty; send a JSON object like %s.", example)
	}
	if !json.Valid(body) {
		var se *json.SyntaxError
		if err := json.Unmarshal(body, new(any)); errors.As(err, &se) {
			return coupon.Errorf(coupon.EINVALID, "The request body is not valid JSON (at byte %d: %s).", se.Offset, se.Error())
		}
		return coupon.Errorf(coupon.EINVALID, "The request body is not valid JSON.")
	}
	if body[i] != '{' {
		return coupon.Errorf(coupon.EINVALID, "The request body must be a JSON object like %s.", example)
	}
	rv := reflect.ValueOf(v).Elem()
	names := fieldNames(rv.Type())
	var seen uint64
	// body is valid JSON: the walk below needs no error handling.
	for i = skipSpace(body, i+1); body[i] != '}'; i = skipSpace(body, i+1) {
		end := stringEnd(body, i)
		key := body[i+1 : end]
		i = skipSpace(body, end+1) + 1 // past ':'
		i = skipSpace(body, i)
		vend := valueEnd(body, i)
		raw := body[i:vend]
		f, err := matchField(key, names)
		if err != nil {
			return err
		}
		if seen&(1<<f) != 0 {
			return coupon.Errorf(coupon.EINVALID, "Field %q appears more than once in the request body.", names[f])
		}
		seen |= 1 << f
		if fv := rv.Field(f); fv.Type() == rawMessageType {
			fv.SetBytes(raw)
		} else if err := json.Unmarshal(raw, fv.Addr().Interface()); err != nil {
			return coupon.Errorf(coupon.EINVALID, "%s has the wrong type (got %s).", names[f], echo(string(raw)))
		}
		if i = skipSpace(body, vend); body[i] == '}' {
			break
		}
		// body[i] is ','
	}
	return nil
}

// matchField returns the index of the field named key (a raw JSON string's
// contents) or an error naming the unknown key.
func matchField(key []byte, names []string) (int, error) {
	if bytes.IndexByte(key, '\\') >= 0 { // escaped: decode (rare, allocates)
		var s string
		_ = json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &s)
		key = []byte(s)
	}
	for f, name := range names {
		if string(key) == name {
			return f, nil
		}
	}
	for _, name := range names {
		if strings.EqualFold(string(key), name) {
			return 0, coupon.Errorf(coupon.EINVALID, "Unknown field %q in the request body: field names are case-sensitive, did you mean %q?", echo(string(key)), name)
		}
	}
	return 0, coupon.Errorf(coupon.EINVALID, "Unknown field %q in the request body (known fields: %s).", echo(string(key)), strings.Join(names, ", "))
}

// stringEnd returns the index of the closing quote of the valid JSON
// string that opens at b[i].
func stringEnd(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i
}

// valueEnd returns the index just past the valid JSON value that starts
// at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i) + 1
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i)
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) && strings.IndexByte(",}] \t\r\n", b[i]) < 0 {
		i++
	}
	return i
}
