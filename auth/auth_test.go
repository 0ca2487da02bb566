package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/cli"
	"github.com/golang-jwt/jwt/v5"
)

const secret = "0123456789abcdef0123456789abcdef-test"

type keys struct {
	rsa      *rsa.PrivateKey
	rsaPEM   string
	ec256    *ecdsa.PrivateKey
	ec256PEM string
	ec384    *ecdsa.PrivateKey
	ed       ed25519.PrivateKey
	edPEM    string
}

func mustKeys(t testing.TB) keys {
	t.Helper()
	var k keys
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	var edPub ed25519.PublicKey
	if edPub, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	k.rsaPEM = pemPublic(t, &k.rsa.PublicKey)
	k.ec256PEM = pemPublic(t, &k.ec256.PublicKey)
	k.edPEM = pemPublic(t, edPub)
	return k
}

func pemPublic(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// sign returns a token of claims signed by method with key.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// claims returns valid claims for sub expiring in an hour.
func claims(sub string) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}
}

func with(c jwt.RegisteredClaims, f func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
	f(&c)
	return c
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerify(t *testing.T) {
	k := mustKeys(t)
	hs, err := New(Config{HS256Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := New(Config{PublicKey: k.rsaPEM})
	if err != nil {
		t.Fatal(err)
	}
	es, err := New(Config{PublicKey: k.ec256PEM})
	if err != nil {
		t.Fatal(err)
	}
	ed, err := New(Config{PublicKey: k.edPEM})
	if err != nil {
		t.Fatal(err)
	}
	scoped, err := New(Config{HS256Secret: secret, Issuer: "https://id.example", Audience: "coupon"})
	if err != nil {
		t.Fatal(err)
	}
	hsKey := []byte(secret)
	valid := claims("42")
	hsValid := sign(t, jwt.SigningMethodHS256, hsKey, valid)
	past := time.Now().Add(-time.Hour)

	tests := []struct {
		name    string
		v       *Verifier
		token   string
		want    int64
		wantMsg string // substring of the error message; "" means success
	}{
		{"hs256 ok", hs, hsValid, 42, ""},
		{"rs256 ok", rs, sign(t, jwt.SigningMethodRS256, k.rsa, valid), 42, ""},
		{"ps256 ok", rs, sign(t, jwt.SigningMethodPS256, k.rsa, valid), 42, ""},
		{"rs512 ok", rs, sign(t, jwt.SigningMethodRS512, k.rsa, valid), 42, ""},
		{"es256 ok", es, sign(t, jwt.SigningMethodES256, k.ec256, valid), 42, ""},
		{"eddsa ok", ed, sign(t, jwt.SigningMethodEdDSA, k.ed, valid), 42, ""},
		{"max user id", hs, sign(t, jwt.SigningMethodHS256, hsKey, claims("9223372036854775807")), 9223372036854775807, ""},
		{"iss and aud ok", scoped, sign(t, jwt.SigningMethodHS256, hsKey, with(valid, func(c *jwt.RegisteredClaims) {
			c.Issuer, c.Audience = "https://id.example", jwt.ClaimStrings{"other", "coupon"}
		})), 42, ""},

		{"missing", hs, "", 0, "Missing bearer token"},
		{"one segment", hs, "abc", 0, "Malformed token"},
		{"garbage segments", hs, "a.b.c", 0, "Malformed token"},
		{"claims not json", hs, b64(`{"alg":"HS256","typ":"JWT"}`) + "." + b64("not json") + ".sig", 0, "Malformed token"},
		{"numeric sub", hs, sign(t, jwt.SigningMethodHS256, hsKey, jwt.MapClaims{"sub": 42, "exp": time.Now().Add(time.Hour).Unix()}), 0, "Malformed token"},
		{"too long", hs, strings.Repeat("a", MaxTokenLen+1), 0, "Malformed token"},

		{"other secret", hs, sign(t, jwt.SigningMethodHS256, []byte(secret+"x"), valid), 0, "signature is invalid"},
		{"tampered claims", hs, tamper(hsValid, `{"sub":"43","exp":9999999999}`), 0, "signature is invalid"},
		{"other rsa key", rs, sign(t, jwt.SigningMethodRS256, mustRSA(t), valid), 0, "signature is invalid"},
		{"other ec key", es, sign(t, jwt.SigningMethodES256, mustEC(t), valid), 0, "signature is invalid"},
		{"stripped signature", hs, strings.Join(strings.Split(hsValid, ".")[:2], ".") + ".", 0, "signature is invalid"},

		{"expired", hs, sign(t, jwt.SigningMethodHS256, hsKey, with(valid, func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(past) })), 0, "expired"},
		{"no exp", hs, sign(t, jwt.SigningMethodHS256, hsKey, jwt.RegisteredClaims{Subject: "42"}), 0, "no exp claim"},
		{"nbf in future", hs, sign(t, jwt.SigningMethodHS256, hsKey, with(valid, func(c *jwt.RegisteredClaims) {
			c.NotBefore = jwt.NewNumericDate(time.Now().Add(30 * time.Minute))
		})), 0, "not valid yet"},
		{"wrong issuer", scoped, sign(t, jwt.SigningMethodHS256, hsKey, with(valid, func(c *jwt.RegisteredClaims) {
			c.Issuer, c.Audience = "https://evil.example", jwt.ClaimStrings{"coupon"}
		})), 0, "wrong issuer"},
		{"no issuer", scoped, sign(t, jwt.SigningMethodHS256, hsKey, with(valid, func(c *jwt.RegisteredClaims) {
			c.Audience = jwt.ClaimStrings{"coupon"}
		})), 0, "wrong issuer"},
		{"no audience", scoped, sign(t, jwt.SigningMethodHS256, hsKey, with(valid, func(c *jwt.RegisteredClaims) {
			c.Issuer = "https://id.example"
		})), 0, "wrong audience"},
		{"wrong audience", scoped, sign(t, jwt.SigningMethodHS256, hsKey, with(valid, func(c *jwt.RegisteredClaims) {
			c.Issuer, c.Audience = "https://id.example", jwt.ClaimStrings{"billing"}
		})), 0, "wrong audience"},

		{"alg none", hs, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid), 0, "wrong algorithm: expected HS256"},
		{"alg none against rsa", rs, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid), 0, "wrong algorithm"},
		{"hs256 with the rsa public key as secret", rs, sign(t, jwt.SigningMethodHS256, []byte(k.rsaPEM), valid), 0, "wrong algorithm: expected RS256"},
		{"hs256 with the ec public key as secret", es, sign(t, jwt.SigningMethodHS256, []byte(k.ec256PEM), valid), 0, "wrong algorithm: expected ES256"},
		{"hs384 against secret", hs, sign(t, jwt.SigningMethodHS384, hsKey, valid), 0, "wrong algorithm"},
		{"rs256 against secret", hs, sign(t, jwt.SigningMethodRS256, k.rsa, valid), 0, "wrong algorithm"},
		{"es384 against p-256 key", es, sign(t, jwt.SigningMethodES384, k.ec384, valid), 0, "wrong algorithm: expected ES256"},
		{"es256 against rsa key", rs, sign(t, jwt.SigningMethodES256, k.ec256, valid), 0, "wrong algorithm"},
		{"unknown alg", hs, b64(`{"alg":"XX256"}`) + "." + b64(`{"sub":"42"}`) + ".c2ln", 0, "wrong algorithm"},
		{"no alg", hs, b64(`{"typ":"JWT"}`) + "." + b64(`{"sub":"42"}`) + ".c2ln", 0, "wrong algorithm"},

		{"no sub", hs, sign(t, jwt.SigningMethodHS256, hsKey, claims("")), 0, "no sub claim"},
		{"sub letters", hs, sign(t, jwt.SigningMethodHS256, hsKey, claims("alice")), 0, "not a user ID"},
		{"sub zero", hs, sign(t, jwt.SigningMethodHS256, hsKey, claims("0")), 0, "not a user ID"},
		{"sub negative", hs, sign(t, jwt.SigningMethodHS256, hsKey, claims("-1")), 0, "not a user ID"},
		{"sub plus sign", hs, sign(t, jwt.SigningMethodHS256, hsKey, claims("+1")), 0, "not a user ID"},
		{"sub fraction", hs, sign(t, jwt.SigningMethodHS256, hsKey, claims("1.5")), 0, "not a user ID"},
		{"sub overflow", hs, sign(t, jwt.SigningMethodHS256, hsKey, claims("9223372036854775808")), 0, "not a user ID"},
		{"sub spaces", hs, sign(t, jwt.SigningMethodHS256, hsKey, claims(" 42")), 0, "not a user ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.v.Verify(tt.token)
			if tt.wantMsg == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Verify = %d, %v; want %d, nil", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify = %d, nil; want error containing %q", got, tt.wantMsg)
			}
			if code := coupon.ErrorCode(err); code != coupon.EUNAUTHORIZED {
				t.Errorf("code = %q, want %q (err %v)", code, coupon.EUNAUTHORIZED, err)
			}
			if msg := coupon.ErrorMessage(err); !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message = %q, want it to contain %q", msg, tt.wantMsg)
			}
		})
	}
}

// tamper replaces the claims segment of a signed token, keeping its signature.
func tamper(token, claimsJSON string) string {
	p := strings.Split(token, ".")
	return p[0] + "." + b64(claimsJSON) + "." + p[2]
}

func mustRSA(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustEC(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestLeeway(t *testing.T) {
	v, err := New(Config{HS256Secret: secret, Leeway: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	justExpired := with(claims("7"), func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-10 * time.Second)) })
	if id, err := v.Verify(sign(t, jwt.SigningMethodHS256, []byte(secret), justExpired)); err != nil || id != 7 {
		t.Fatalf("within leeway: Verify = %d, %v; want 7, nil", id, err)
	}
	longExpired := with(claims("7"), func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-2 * time.Minute)) })
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, []byte(secret), longExpired)); err == nil {
		t.Fatal("beyond leeway: Verify succeeded")
	}
}

func TestFromHeader(t *testing.T) {
	v, err := New(Config{HS256Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodHS256, []byte(secret), claims("9"))
	tests := []struct {
		name, header string
		want         int64
		wantMsg      string
	}{
		{"bearer", "Bearer " + tok, 9, ""},
		{"lower-case scheme", "bearer " + tok, 9, ""},
		{"extra spaces", "  Bearer   " + tok + " ", 9, ""},
		{"empty", "", 0, "Missing bearer token"},
		{"scheme only", "Bearer", 0, "must be \"Bearer <JWT>\""},
		{"scheme and blank", "Bearer   ", 0, "must be \"Bearer <JWT>\""},
		{"basic", "Basic dXNlcjpwYXNz", 0, "must be \"Bearer <JWT>\""},
		{"token without scheme", tok, 0, "must be \"Bearer <JWT>\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.FromHeader(tt.header)
			if tt.wantMsg == "" {
				if err != nil || got != tt.want {
					t.Fatalf("FromHeader = %d, %v; want %d, nil", got, err, tt.want)
				}
				return
			}
			if coupon.ErrorCode(err) != coupon.EUNAUTHORIZED || !strings.Contains(coupon.ErrorMessage(err), tt.wantMsg) {
				t.Fatalf("FromHeader error = %v; want unauthorized containing %q", err, tt.wantMsg)
			}
		})
	}
}

func TestNew(t *testing.T) {
	k := mustKeys(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(keyFile, []byte(k.ec256PEM), 0o600); err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, err := x509.MarshalECPrivateKey(k.ec256)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)}))
	tests := []struct {
		name     string
		cfg      Config
		wantAlgs string
		wantErr  string
	}{
		{"secret", Config{HS256Secret: secret}, "HS256", ""},
		{"rsa pkix", Config{PublicKey: k.rsaPEM}, "RS256,RS384,RS512,PS256,PS384,PS512", ""},
		{"rsa pkcs1", Config{PublicKey: pkcs1}, "RS256,RS384,RS512,PS256,PS384,PS512", ""},
		{"ec p-384", Config{PublicKey: pemPublic(t, &k.ec384.PublicKey)}, "ES384", ""},
		{"ec file", Config{PublicKeyFile: keyFile}, "ES256", ""},
		{"eddsa", Config{PublicKey: k.edPEM}, "EdDSA", ""},
		{"no key", Config{}, "", "no key configured"},
		{"two keys", Config{HS256Secret: secret, PublicKey: k.rsaPEM}, "", "only one of"},
		{"short secret", Config{HS256Secret: "short"}, "", "at least 32 bytes"},
		{"negative leeway", Config{HS256Secret: secret, Leeway: -time.Second}, "", "leeway"},
		{"not pem", Config{PublicKey: "hello"}, "", "not PEM"},
		{"private key", Config{PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecPriv}))}, "", "public key only"},
		{"weak rsa", Config{PublicKey: pemPublic(t, &small.PublicKey)}, "", "at least 2048"},
		{"corrupt der", Config{PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}))}, "", "parse PUBLIC KEY"},
		{"missing file", Config{PublicKeyFile: filepath.Join(dir, "nope.pem")}, "", "read public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(v.Algorithms(), ","); got != tt.wantAlgs {
				t.Errorf("Algorithms = %s, want %s", got, tt.wantAlgs)
			}
		})
	}
}

// BenchmarkVerify: the cost user auth adds to one issue request, per algorithm.
func BenchmarkVerify(b *testing.B) {
	k := mustKeys(b)
	cases := []struct {
		name   string
		cfg    Config
		method jwt.SigningMethod
		key    any
	}{
		{"HS256", Config{HS256Secret: secret}, jwt.SigningMethodHS256, []byte(secret)},
		{"RS256", Config{PublicKey: k.rsaPEM}, jwt.SigningMethodRS256, k.rsa},
		{"ES256", Config{PublicKey: k.ec256PEM}, jwt.SigningMethodES256, k.ec256},
		{"EdDSA", Config{PublicKey: k.edPEM}, jwt.SigningMethodEdDSA, k.ed},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			v, err := New(c.cfg)
			if err != nil {
				b.Fatal(err)
			}
			tok, err := jwt.NewWithClaims(c.method, claims("42")).SignedString(c.key)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestBind(t *testing.T) {
	t.Setenv("COUPON_JWT_HS256_SECRET", secret)
	t.Setenv("COUPON_JWT_AUDIENCE", "coupon")
	var c Config
	fs := cli.New("test")
	c.Bind(fs)
	if err := fs.Parse([]string{"--jwt-issuer", "https://id.example"}); err != nil {
		t.Fatal(err)
	}
	want := Config{HS256Secret: secret, Issuer: "https://id.example", Audience: "coupon", Leeway: 30 * time.Second}
	if c != want {
		t.Fatalf("bound %+v, want %+v", c, want)
	}
	if !c.Enabled() {
		t.Fatal("a secret does not enable auth")
	}
	if kv := fmt.Sprint(fs.Redacted()...); strings.Contains(kv, secret) {
		t.Fatalf("the secret is logged: %s", kv)
	}
}
