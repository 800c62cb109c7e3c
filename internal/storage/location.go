package storage

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// Location schemes.
const (
	SchemeS3   = "s3"
	SchemeFile = "file"
)

// Location is a parsed LOCATION:
//
//	s3://BUCKET/PREFIX?endpoint=HOST:PORT&region=R[&insecure=true]
//	file:///PATH
//
// S3 credentials are never part of a location; they come from the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optionally AWS_SESSION_TOKEN) so that a location can be
// printed, logged and stored in a resource's spec.
type Location struct {
	Scheme string
	// S3 only.
	Bucket   string
	Prefix   string // without leading or trailing slashes; may be empty
	Endpoint string // host:port
	Region   string
	Insecure bool // plain HTTP
	// File only: an absolute, cleaned path.
	Path string
}

// Defaults for S3 locations that leave them out.
const (
	DefaultS3Endpoint = "s3.amazonaws.com"
	DefaultS3Region   = "us-east-1"
)

// ParseLocation parses and validates a LOCATION string.
func ParseLocation(s string) (Location, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Location{}, fmt.Errorf("invalid storage location %q: %w", s, err)
	}
	switch u.Scheme {
	case SchemeS3:
		return parseS3(s, u)
	case SchemeFile:
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, fmt.Errorf("invalid storage location %q: file locations take an absolute path, file:///PATH", s)
		}
		if u.RawQuery != "" {
			return Location{}, fmt.Errorf("invalid storage location %q: file locations take no options", s)
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return Location{}, fmt.Errorf("invalid storage location %q: file locations take an absolute path, file:///PATH", s)
		}
		return Location{Scheme: SchemeFile, Path: filepath.Clean(u.Path)}, nil
	case "":
		return Location{}, fmt.Errorf("invalid storage location %q: want s3://BUCKET/PREFIX?endpoint=HOST:PORT&region=R or file:///PATH", s)
	default:
		return Location{}, fmt.Errorf("invalid storage location %q: unsupported scheme %q (want s3 or file)", s, u.Scheme)
	}
}

func parseS3(s string, u *url.URL) (Location, error) {
	if u.User != nil {
		return Location{}, fmt.Errorf("invalid storage location: credentials do not belong in a location; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	loc := Location{
		Scheme:   SchemeS3,
		Bucket:   u.Host,
		Prefix:   strings.Trim(u.Path, "/"),
		Endpoint: DefaultS3Endpoint,
		Region:   DefaultS3Region,
	}
	if loc.Bucket == "" {
		return Location{}, fmt.Errorf("invalid storage location %q: no bucket (want s3://BUCKET/PREFIX)", s)
	}
	if !bucketRE.MatchString(loc.Bucket) {
		return Location{}, fmt.Errorf("invalid storage location %q: bucket %q is not a valid S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens)", s, loc.Bucket)
	}
	if loc.Prefix != "" && checkKey(loc.Prefix) != nil {
		return Location{}, fmt.Errorf("invalid storage location %q: prefix %q is not a clean path", s, loc.Prefix)
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "endpoint":
			if strings.Contains(v, ":") {
				host, port, err := net.SplitHostPort(v)
				if err != nil || host == "" {
					return Location{}, fmt.Errorf("invalid storage location %q: endpoint %q is not HOST:PORT", s, v)
				}
				if _, err := strconv.ParseUint(port, 10, 16); err != nil {
					return Location{}, fmt.Errorf("invalid storage location %q: endpoint port %q is not a number", s, port)
				}
			} else if v == "" || strings.ContainsAny(v, "/@?#") {
				return Location{}, fmt.Errorf("invalid storage location %q: endpoint %q is not HOST:PORT", s, v)
			}
			loc.Endpoint = v
		case "region":
			if v == "" {
				return Location{}, fmt.Errorf("invalid storage location %q: empty region", s)
			}
			loc.Region = v
		case "insecure":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Location{}, fmt.Errorf("invalid storage location %q: insecure=%q is not true or false", s, v)
			}
			loc.Insecure = b
		default:
			return Location{}, fmt.Errorf("invalid storage location %q: unknown option %q (want endpoint, region, insecure)", s, k)
		}
	}
	return loc, nil
}

// String renders the location back in LOCATION syntax.
func (l Location) String() string {
	switch l.Scheme {
	case SchemeS3:
		u := url.URL{Scheme: SchemeS3, Host: l.Bucket}
		if l.Prefix != "" {
			u.Path = "/" + l.Prefix
		}
		// Written by hand: url.Values would escape the colon in HOST:PORT.
		u.RawQuery = "endpoint=" + l.Endpoint + "&region=" + url.QueryEscape(l.Region)
		if l.Insecure {
			u.RawQuery += "&insecure=true"
		}
		return u.String()
	case SchemeFile:
		return (&url.URL{Scheme: SchemeFile, Path: l.Path}).String()
	}
	return ""
}

// Credentials for S3.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// CredentialsFromEnv reads the usual AWS variables.
func CredentialsFromEnv() Credentials {
	return Credentials{
		AccessKeyID:     os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken:    os.Getenv("AWS_SESSION_TOKEN"),
	}
}
