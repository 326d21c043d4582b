// Command xoauth2 is the same program as oauth2only written with
// golang.org/x/oauth2/clientcredentials, the baseline of the footprint test.
package main

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/oauth2/clientcredentials"
)

func main() {
	cfg := clientcredentials.Config{
		ClientID:     os.Getenv("CLIENT_ID"),
		ClientSecret: os.Getenv("CLIENT_SECRET"),
		TokenURL:     "https://idp.example.com/oauth2/token",
		Scopes:       []string{"llm.invoke"},
	}
	client := cfg.Client(context.Background())
	resp, err := client.Get("https://llm.example.com/v1/models")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
}
