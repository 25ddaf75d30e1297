package apiclient

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// Resource is the client of one resource in one namespace ("" for all
// namespaces, or a cluster-scoped resource), with the calls urunner makes.
//
// Each call builds its request as client-go's generated typed clients do
// (k8s.io/client-go/gentype, whose package is not used here because it
// links client-go's fake-client machinery, and with it strategic merge
// patch, OpenAPI models and gnostic: ~1.5 MiB of binary).
type Resource[T object, L runtime.Object] struct {
	client    rest.Interface
	resource  string
	namespace string
	newObject func() T
	newList   func() L
}

type object interface {
	runtime.Object
	metav1.Object
}

// request starts a request of verb on the resource, with protobuf as the
// default content type when the configuration sets none (as every
// built-in type's generated client prefers it).
func (c *Resource[T, L]) request(r *rest.Request) *rest.Request {
	return r.UseProtobufAsDefaultIfPreferred(true).
		NamespaceIfScoped(c.namespace, c.namespace != "").
		Resource(c.resource)
}

// timeout is a list's or watch's client-side timeout, its TimeoutSeconds.
func timeout(o metav1.ListOptions) time.Duration {
	if o.TimeoutSeconds == nil {
		return 0
	}
	return time.Duration(*o.TimeoutSeconds) * time.Second
}

// Get reads the object name.
func (c *Resource[T, L]) Get(ctx context.Context, name string, o metav1.GetOptions) (T, error) {
	result := c.newObject()
	err := c.request(c.client.Get()).Name(name).VersionedParams(&o, parameterCodec).Do(ctx).Into(result)
	return result, err
}

// List reads one list (one page when o.Limit is set).
func (c *Resource[T, L]) List(ctx context.Context, o metav1.ListOptions) (L, error) {
	list := c.newList()
	err := c.request(c.client.Get()).VersionedParams(&o, parameterCodec).Timeout(timeout(o)).Do(ctx).Into(list)
	return list, err
}

// Watch starts a watch.
func (c *Resource[T, L]) Watch(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	o.Watch = true
	return c.request(c.client.Get()).VersionedParams(&o, parameterCodec).Timeout(timeout(o)).Watch(ctx)
}

// Create creates obj.
func (c *Resource[T, L]) Create(ctx context.Context, obj T, o metav1.CreateOptions) (T, error) {
	result := c.newObject()
	err := c.request(c.client.Post()).VersionedParams(&o, parameterCodec).Body(obj).Do(ctx).Into(result)
	return result, err
}

// Update replaces obj (its resourceVersion, when set, is a precondition).
func (c *Resource[T, L]) Update(ctx context.Context, obj T, o metav1.UpdateOptions) (T, error) {
	result := c.newObject()
	err := c.request(c.client.Put()).Name(obj.GetName()).VersionedParams(&o, parameterCodec).Body(obj).Do(ctx).Into(result)
	return result, err
}

// UpdateStatus replaces obj's status subresource.
func (c *Resource[T, L]) UpdateStatus(ctx context.Context, obj T, o metav1.UpdateOptions) (T, error) {
	result := c.newObject()
	err := c.request(c.client.Put()).Name(obj.GetName()).SubResource("status").VersionedParams(&o, parameterCodec).Body(obj).Do(ctx).Into(result)
	return result, err
}

// Patch patches the object name (or its subresources) with data of type pt.
func (c *Resource[T, L]) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, o metav1.PatchOptions, subresources ...string) (T, error) {
	result := c.newObject()
	err := c.request(c.client.Patch(pt)).Name(name).SubResource(subresources...).VersionedParams(&o, parameterCodec).Body(data).Do(ctx).Into(result)
	return result, err
}
