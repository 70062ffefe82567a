package adapters

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
)

// DecodeSettings reads an instance's settings (its "settings" object as
// JSON; none reads as {}) into v, a pointer to the kind's settings
// struct, and checks v's validate tags: the first step of every
// Factory. Its errors start "settings: " and name the field.
func DecodeSettings(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	if err := Decode(raw, v); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	if err := Validate(v); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	return nil
}

// TLSConfig is the TLS configuration (1.2 at least) an instance builds
// from its settings' files: the certificate it presents (cert and key,
// PEM; none when cert is ""), and the CA that verifies its peer (ca, PEM,
// as RootCAs; the system's roots when ""). A listener that also requires
// client certificates sets ClientCAs from RootCAs.
func TLSConfig(cert, key, ca string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{pair}
	}
	if ca != "" {
		pool, err := ReadCAs(ca)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	return c, nil
}

// ReadCAs reads a PEM file of CA certificates into a pool.
func ReadCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
