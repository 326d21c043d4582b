package azuread_test

import (
	"context"
	"fmt"
	"log"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/proxyauth/proxyauth/credential/azuread"
)

// With nil, New uses azidentity's DefaultAzureCredential, created on
// the first GetToken: managed identity in Azure, workload identity in AKS,
// environment variables or the Azure CLI on a developer's machine.
func ExampleNew() {
	cred := azuread.New(nil)
	tok, err := cred.GetToken(context.Background(), "https://cognitiveservices.azure.com/.default")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.ExpiresOn)
}

// Any azidentity credential can be adapted, such as a service principal's
// client secret.
func ExampleNew_clientSecret() {
	sp, err := azidentity.NewClientSecretCredential("TENANT_ID", "CLIENT_ID", "CLIENT_SECRET", nil)
	if err != nil {
		log.Fatal(err)
	}
	cred := azuread.New(sp)
	_ = cred // pass cred to transport.New or transport.Wrap
}
