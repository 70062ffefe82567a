package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
)

// SMTPConfig configures e-mail over SMTP.
type SMTPConfig struct {
	// Host and Port of the mail server (the submission port 587 by
	// default; 465 with TLS implicit).
	Host string `json:"host" validate:"required,hostname_rfc1123|ip"`
	Port int    `json:"port" validate:"omitempty,min=1,max=65535"`
	// From is the sender, an RFC 5322 address ("Trust reminders
	// <reminders@trust.example>").
	From string `json:"from" validate:"required"`
	// TLS is how the connection is secured: "starttls" (the default:
	// STARTTLS whenever the server offers it), "require-starttls" (fail
	// when it does not), "implicit" (TLS from the first byte, port 465)
	// or "none" (never; only for a relay on the same host).
	TLS string `json:"tls" validate:"omitempty,oneof=starttls require-starttls implicit none"`
	// Username, with the password from the environment variable
	// PasswordEnv, authenticates (AUTH PLAIN, only over TLS or to
	// localhost); empty: no authentication.
	Username    string `json:"username"`
	PasswordEnv string `json:"passwordEnv" validate:"required_with=Username"`
	// CAFile is a PEM file of the certificate authorities the server's
	// certificate may chain to, instead of the system's.
	CAFile string `json:"caFile"`
	// HelloName is the name sent in EHLO (default "localhost").
	HelloName string `json:"helloName"`
	// Timeout bounds one delivery, connection to QUIT (default 30s).
	Timeout Duration `json:"timeout"`

	password string
	tls      *tls.Config
}

// Mail is one plain-text e-mail.
type Mail struct {
	To      string // an address ("someone@example.org")
	Subject string
	Text    string
	// MessageID identifies the message (the outbox control id): a
	// receiver can tell a resend by it.
	MessageID string
}

// Mailer sends e-mail through one SMTP server.
type Mailer struct {
	cfg  SMTPConfig
	from *mail.Address
	now  func() time.Time
}

// NewMailer returns a Mailer for cfg; tlsConfig, when not nil, is the TLS
// configuration to use (tests trust their server's certificate through
// it), else one verifying cfg.Host against cfg.CAFile or the system's
// roots.
func NewMailer(cfg SMTPConfig, password string, tlsConfig *tls.Config, now func() time.Time) (*Mailer, error) {
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("smtp.from %q: %w", cfg.From, err)
	}
	if cfg.TLS == "" {
		cfg.TLS = "starttls"
	}
	if cfg.Port == 0 {
		cfg.Port = 587
		if cfg.TLS == "implicit" {
			cfg.Port = 465
		}
	}
	if cfg.HelloName == "" {
		cfg.HelloName = "localhost"
	}
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pool, err := adapters.ReadCAs(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("smtp.caFile: %w", err)
			}
			tlsConfig.RootCAs = pool
		}
	}
	tlsConfig = tlsConfig.Clone()
	if tlsConfig.ServerName == "" {
		tlsConfig.ServerName = cfg.Host
	}
	cfg.password, cfg.tls = password, tlsConfig
	if now == nil {
		now = time.Now
	}
	return &Mailer{cfg: cfg, from: from, now: now}, nil
}

// Send delivers m. An error the server gave with a 5xx code, or an
// address that cannot be one, is Permanent; any other (connection, 4xx)
// is worth retrying.
func (ml *Mailer) Send(ctx context.Context, m Mail) error {
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return Permanent(fmt.Errorf("%q is not an e-mail address: %v", m.To, err))
	}
	msg := ml.message(to, m)
	ctx, cancel := context.WithTimeout(ctx, ml.cfg.Timeout.Or(30*time.Second))
	defer cancel()
	addr := net.JoinHostPort(ml.cfg.Host, strconv.Itoa(ml.cfg.Port))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	secure := false
	if ml.cfg.TLS == "implicit" {
		tc := tls.Client(conn, ml.cfg.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		conn, secure = tc, true
	}
	c, err := smtp.NewClient(conn, ml.cfg.Host)
	if err != nil {
		return smtpError(err)
	}
	defer c.Close()
	if err := c.Hello(ml.cfg.HelloName); err != nil {
		return smtpError(err)
	}
	if !secure && ml.cfg.TLS != "none" {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(ml.cfg.tls); err != nil {
				return err
			}
			secure = true
		} else if ml.cfg.TLS == "require-starttls" {
			return errors.New("smtp: the server does not offer STARTTLS, which the configuration requires")
		}
	}
	if ml.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("smtp: the server offers no AUTH, and the configuration names a username")
		}
		if err := c.Auth(smtp.PlainAuth("", ml.cfg.Username, ml.cfg.password, ml.cfg.Host)); err != nil {
			return smtpError(err)
		}
	}
	if err := c.Mail(ml.from.Address); err != nil {
		return smtpError(err)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return smtpError(err)
	}
	w, err := c.Data()
	if err != nil {
		return smtpError(err)
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return smtpError(err)
	}
	_ = c.Quit() // the message is accepted once DATA is
	return nil
}

// message renders m as an RFC 5322 message with one quoted-printable
// UTF-8 plain-text part, lines ending CRLF.
func (ml *Mailer) message(to *mail.Address, m Mail) []byte {
	var b bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("From", ml.from.String())
	h("To", to.String())
	h("Subject", mime.QEncoding.Encode("utf-8", oneLine(m.Subject)))
	h("Date", ml.now().Format(time.RFC1123Z))
	if m.MessageID != "" {
		domain := "signpost.invalid"
		if i := strings.LastIndexByte(ml.from.Address, '@'); i >= 0 {
			domain = ml.from.Address[i+1:]
		}
		h("Message-ID", "<"+oneLine(m.MessageID)+"@"+domain+">")
	}
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	h("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	text := strings.ReplaceAll(strings.ReplaceAll(m.Text, "\r\n", "\n"), "\n", "\r\n")
	_, _ = qp.Write([]byte(text))
	_ = qp.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}

// oneLine drops line breaks from a header value, so that no value can add
// a header.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", " ").Replace(s)), " ")
}

// smtpError classifies a server's answer: 5xx is Permanent.
func smtpError(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		return Permanent(err)
	}
	return err
}
