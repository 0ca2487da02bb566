// Package auth verifies the optional user JWTs of the issue endpoint: the key
// pins the algorithm family, exp is required, and the user ID comes from sub.
package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/cli"
	"github.com/golang-jwt/jwt/v5"
)

// MinSecretLen is the shortest HS256 secret accepted (RFC 7518 §3.2: a key
// at least as long as the hash output).
const MinSecretLen = 32

// MaxTokenLen bounds the token parsed, so a huge header costs nothing.
const MaxTokenLen = 8 << 10

// Config selects the verification key. Exactly one of HS256Secret,
// PublicKey and PublicKeyFile is set when auth is enabled; none when not.
type Config struct {
	HS256Secret   string        // shared secret: tokens must be HS256
	PublicKey     string        // PEM of an RSA, ECDSA or Ed25519 public key (or certificate)
	PublicKeyFile string        // path of such a PEM file
	Issuer        string        // expected iss; "" accepts any
	Audience      string        // expected member of aud; "" accepts any
	Leeway        time.Duration // clock skew tolerated on exp and nbf
}

// Enabled reports whether a key is configured.
func (c Config) Enabled() bool {
	return c.HS256Secret != "" || c.PublicKey != "" || c.PublicKeyFile != ""
}

// Validate checks the configuration without reading files.
func (c Config) Validate() error {
	n := 0
	for _, s := range []string{c.HS256Secret, c.PublicKey, c.PublicKeyFile} {
		if s != "" {
			n++
		}
	}
	switch {
	case n > 1:
		return errors.New("jwt: set only one of the HS256 secret, the public key and the public key file")
	case c.HS256Secret != "" && len(c.HS256Secret) < MinSecretLen:
		return fmt.Errorf("jwt: the HS256 secret must be at least %d bytes (it has %d)", MinSecretLen, len(c.HS256Secret))
	case c.Leeway < 0:
		return errors.New("jwt: the leeway must not be negative")
	}
	return nil
}

// Verifier checks bearer tokens against one key. It is safe for concurrent use.
type Verifier struct {
	key    any
	algs   []string // accepted "alg" values, all of the key's family
	parser *jwt.Parser

	issuer, audience string
}

// New builds a Verifier from cfg, which must be Enabled.
func New(cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{issuer: cfg.Issuer, audience: cfg.Audience}
	switch {
	case cfg.HS256Secret != "":
		v.key, v.algs = []byte(cfg.HS256Secret), []string{"HS256"}
	case cfg.PublicKey != "" || cfg.PublicKeyFile != "":
		pemBytes, src := []byte(cfg.PublicKey), "the public key"
		if cfg.PublicKeyFile != "" {
			b, err := os.ReadFile(cfg.PublicKeyFile)
			if err != nil {
				return nil, fmt.Errorf("jwt: read public key: %w", err)
			}
			pemBytes, src = b, cfg.PublicKeyFile
		}
		key, algs, err := parsePublicKey(pemBytes)
		if err != nil {
			return nil, fmt.Errorf("jwt: %s: %w", src, err)
		}
		v.key, v.algs = key, algs
	default:
		return nil, errors.New("jwt: no key configured")
	}
	opts := []jwt.ParserOption{jwt.WithExpirationRequired(), jwt.WithLeeway(cfg.Leeway)}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Algorithms returns the accepted "alg" header values.
func (v *Verifier) Algorithms() []string { return append([]string(nil), v.algs...) }

// parsePublicKey decodes the first PEM block and returns its key and the
// algorithms of its family. Private keys are refused: the gateway only verifies.
func parsePublicKey(b []byte) (any, []string, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, nil, errors.New("not PEM (expected -----BEGIN PUBLIC KEY-----)")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			return nil, nil, fmt.Errorf("a %s was given: configure the public key only", block.Type)
		}
		return nil, nil, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, nil, fmt.Errorf("RSA key of %d bits: at least 2048 needed", k.N.BitLen())
		}
		return k, []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		// ES256/384/512 each name one curve: pin the key's.
		switch k.Curve {
		case elliptic.P256():
			return k, []string{"ES256"}, nil
		case elliptic.P384():
			return k, []string{"ES384"}, nil
		case elliptic.P521():
			return k, []string{"ES512"}, nil
		}
		return nil, nil, fmt.Errorf("ECDSA curve %s has no JWT algorithm", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return k, []string{"EdDSA"}, nil
	}
	return nil, nil, fmt.Errorf("unsupported key type %T", key)
}

// errWrongAlg is returned by the key function for an algorithm outside the
// key's family ("none", HS256 against a public key, RS256 against a secret...).
var errWrongAlg = errors.New("wrong algorithm")

func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	for _, a := range v.algs {
		if a == alg {
			return v.key, nil
		}
	}
	return nil, fmt.Errorf("%w %q", errWrongAlg, alg)
}

// FromHeader verifies the token of an "Authorization: Bearer <token>" header
// value and returns the user ID of its sub claim.
func (v *Verifier) FromHeader(authorization string) (int64, error) {
	if authorization == "" {
		return 0, unauthorized("Missing bearer token: send Authorization: Bearer <JWT>.")
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return 0, unauthorized("The Authorization header must be \"Bearer <JWT>\".")
	}
	return v.Verify(strings.TrimSpace(token))
}

// Verify checks token's algorithm, signature, exp, nbf, iss and aud, and
// returns the user ID of its sub claim. Every error is a *coupon.Error with
// code EUNAUTHORIZED.
func (v *Verifier) Verify(token string) (int64, error) {
	if token == "" {
		return 0, unauthorized("Missing bearer token: send Authorization: Bearer <JWT>.")
	}
	if len(token) > MaxTokenLen {
		return 0, unauthorized("Malformed token: longer than %d bytes.", MaxTokenLen)
	}
	var claims jwt.RegisteredClaims
	if _, err := v.parser.ParseWithClaims(token, &claims, v.keyFunc); err != nil {
		return 0, v.classify(err, &claims)
	}
	return parseSubject(claims.Subject)
}

// classify turns a jwt error into the message a client can act on; claims
// are those decoded before the error, if any.
func (v *Verifier) classify(err error, claims *jwt.RegisteredClaims) error {
	switch {
	case errors.Is(err, errWrongAlg),
		errors.Is(err, jwt.ErrTokenUnverifiable) && !errors.Is(err, jwt.ErrTokenMalformed):
		// ErrTokenUnverifiable alone: an unknown or empty alg header.
		return unauthorized("Token signed with the wrong algorithm: expected %s.", strings.Join(v.algs, ", "))
	case errors.Is(err, jwt.ErrTokenMalformed):
		return unauthorized("Malformed token: expected three base64url segments of JSON header, JSON claims (sub a string, exp and nbf numbers) and signature.")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return unauthorized("Token signature is invalid.")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && claims.ExpiresAt == nil:
		return unauthorized("Token has no exp claim: an expiry is required.")
	case errors.Is(err, jwt.ErrTokenExpired):
		return unauthorized("Token has expired.")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return unauthorized("Token is not valid yet (nbf in the future).")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer),
		errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && claims.Issuer == "" && v.issuer != "":
		return unauthorized("Token has the wrong issuer (iss): expected %q.", v.issuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience), errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return unauthorized("Token has the wrong audience (aud): expected %q.", v.audience)
	}
	return unauthorized("Token is invalid.")
}

// parseSubject reads sub as a user ID: a decimal integer in 1..2^63-1.
func parseSubject(sub string) (int64, error) {
	if sub == "" {
		return 0, unauthorized("Token has no sub claim: it must carry the user ID.")
	}
	for i := 0; i < len(sub); i++ {
		if sub[i] < '0' || sub[i] > '9' {
			return 0, unauthorized("Token sub %q is not a user ID (a decimal integer in 1..9223372036854775807).", truncate(sub))
		}
	}
	id, err := strconv.ParseInt(sub, 10, 64)
	if err != nil || id < 1 {
		return 0, unauthorized("Token sub %q is not a user ID (a decimal integer in 1..9223372036854775807).", truncate(sub))
	}
	return id, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func unauthorized(format string, args ...any) error {
	return coupon.Errorf(coupon.EUNAUTHORIZED, format, args...)
}

// Bind binds the configuration to flags with COUPON_JWT_* environment
// defaults. User auth is off unless a key is given.
func (c *Config) Bind(fs *cli.FlagSet) {
	fs.SecretVar(&c.HS256Secret, "jwt-hs256-secret", "COUPON_JWT_HS256_SECRET", "", "HS256 secret of user tokens (32+ bytes); enables user auth on the issue endpoint")
	fs.SecretVar(&c.PublicKey, "jwt-public-key", "COUPON_JWT_PUBLIC_KEY", "", "PEM RSA/ECDSA/Ed25519 public key of user tokens; enables user auth")
	fs.StringVar(&c.PublicKeyFile, "jwt-public-key-file", "COUPON_JWT_PUBLIC_KEY_FILE", "", "file of that PEM public key; enables user auth")
	fs.StringVar(&c.Issuer, "jwt-issuer", "COUPON_JWT_ISSUER", "", "required iss of user tokens (empty: any)")
	fs.StringVar(&c.Audience, "jwt-audience", "COUPON_JWT_AUDIENCE", "", "required aud of user tokens (empty: any)")
	fs.DurationVar(&c.Leeway, "jwt-leeway", "COUPON_JWT_LEEWAY", 30*time.Second, "clock skew tolerated on exp and nbf")
}
