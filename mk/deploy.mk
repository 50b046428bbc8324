# Deploy targets: CRDs, the Helm chart, plain manifests, the image and a kind cluster.
# Included by the top-level Makefile (`include mk/deploy.mk`); $(PY) is the project's python.

PY ?= .venv/bin/python
IMAGE_REPOSITORY ?= ghcr.io/kadence-dev/kadence
IMAGE_TAG ?= dev
IMAGE ?= $(IMAGE_REPOSITORY):$(IMAGE_TAG)
DOCKER ?= docker
KIND ?= kind
KUBECTL ?= kubectl
HELM ?= helm
KIND_CLUSTER ?= kadence
KADENCE_NAMESPACE ?= kadence
E2E_TIMEOUT ?= 180

.PHONY: crds chart manifests image kind-up kind-load kind-install e2e-kind kind-down

## crds: regenerate crds/ and helm/kadence/crds/ from kadence.domain.resources
crds: install
	PYTHONPATH=operator $(PY) -m kadence.controller.crds crds helm/kadence/crds

## chart: helm lint --strict and render the defaults and every ci/*-values.yaml
chart: install crds
	$(PY) hack/render_manifests.py --lint

## manifests: regenerate manifests/install.yaml (the chart's default render)
manifests: install crds
	$(PY) hack/render_manifests.py

## image: build the one image of every role
image:
	$(DOCKER) build -t $(IMAGE) .

## kind-up: a local kind cluster named $(KIND_CLUSTER)
kind-up:
	@$(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' \
	  || $(KIND) create cluster --name $(KIND_CLUSTER) --wait 120s

## kind-load: copy $(IMAGE) into the kind nodes
kind-load:
	$(KIND) load docker-image $(IMAGE) --name $(KIND_CLUSTER)

## kind-install: install (or upgrade) the chart into the kind cluster with the local image
kind-install:
	$(HELM) upgrade --install kadence helm/kadence \
	  --kube-context kind-$(KIND_CLUSTER) \
	  --namespace $(KADENCE_NAMESPACE) --create-namespace \
	  --set image.repository=$(IMAGE_REPOSITORY) --set image.tag=$(IMAGE_TAG) \
	  --set image.pullPolicy=IfNotPresent \
	  --wait --timeout 5m

## e2e-kind: cluster, image, chart, examples; then wait for a CronSchedule to fire
e2e-kind: kind-up image kind-load kind-install
	$(KUBECTL) --context kind-$(KIND_CLUSTER) -n $(KADENCE_NAMESPACE) apply \
	  -f manifests/examples/workerpool.yaml -f manifests/examples/cronschedule.yaml \
	  -f manifests/examples/scheduledtask.yaml
	$(KUBECTL) --context kind-$(KIND_CLUSTER) -n $(KADENCE_NAMESPACE) apply -f hack/e2e-cronschedule.yaml
	@echo "waiting up to $(E2E_TIMEOUT)s for cronschedule/e2e-every-5s status.lastRun"
	@for i in $$(seq 1 $(E2E_TIMEOUT)); do \
	  last=$$($(KUBECTL) --context kind-$(KIND_CLUSTER) -n $(KADENCE_NAMESPACE) get cronschedule e2e-every-5s \
	    -o jsonpath='{.status.lastRun}' 2>/dev/null); \
	  if [ -n "$$last" ]; then echo "e2e-kind: ok, lastRun=$$last"; exit 0; fi; \
	  sleep 1; \
	done; \
	echo "e2e-kind: timed out"; \
	$(KUBECTL) --context kind-$(KIND_CLUSTER) -n $(KADENCE_NAMESPACE) get all,cronsched,stask,wpool; \
	$(KUBECTL) --context kind-$(KIND_CLUSTER) -n $(KADENCE_NAMESPACE) describe cronschedule e2e-every-5s; \
	$(KUBECTL) --context kind-$(KIND_CLUSTER) -n $(KADENCE_NAMESPACE) logs deploy/kadence-operator --all-containers --tail 100; \
	exit 1

## kind-down: delete the kind cluster
kind-down:
	$(KIND) delete cluster --name $(KIND_CLUSTER)
