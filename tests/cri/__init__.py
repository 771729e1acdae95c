"""A minimal CRI (Container Runtime Interface) client for the e2e suite: what the kubelet sends."""
