module github.com/proxyauth/proxyauth

go 1.26.0

require golang.org/x/oauth2 v0.38.0

require (
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
)
