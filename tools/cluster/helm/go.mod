module github.com/litellm/function-litellm-keys/tools/cluster/helm

go 1.26.0

require helm.sh/helm/v4 v4.3.2 // indirect
