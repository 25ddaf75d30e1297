package kube

import (
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// listMeta returns a list's continue token and remaining item count.
func listMeta(list runtime.Object) (metav1.ListInterface, error) { return apimeta.ListAccessor(list) }

func itemCount(list runtime.Object) int { return apimeta.LenList(list) }

func metaOf(obj runtime.Object) (metav1.Object, error) { return apimeta.Accessor(obj) }
