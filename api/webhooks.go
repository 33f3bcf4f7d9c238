package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/webhook"
)

// WebhookStore is what the API needs of webhook subscriptions and their deliveries;
// *webhook.Store implements it.
type WebhookStore interface {
	Create(ctx context.Context, spec webhook.Spec) (webhook.Subscription, string, error)
	Get(ctx context.Context, id string) (webhook.Subscription, error)
	List(ctx context.Context, after string, limit int) ([]webhook.Subscription, string, error)
	Delete(ctx context.Context, id string) error
	RotateSecret(ctx context.Context, id string) (webhook.Subscription, string, error)
	Deliveries(ctx context.Context, sub, before string, limit int) ([]webhook.Delivery, string, error)
	Delivery(ctx context.Context, sub, id string) (webhook.Delivery, error)
	Redeliver(ctx context.Context, sub, id string) (webhook.Delivery, error)
}

var _ WebhookStore = (*webhook.Store)(nil)

func (s *Server) webhooks() (WebhookStore, error) {
	if s.deps.Webhooks == nil {
		return nil, newProblem(openapi.ProblemDependencyUnavailable, "this server has no webhook store configured")
	}
	return s.deps.Webhooks, nil
}

// CreateWebhook implements openapi.ServerInterface.
func (s *Server) CreateWebhook(c echo.Context) error {
	hooks, err := s.webhooks()
	if err != nil {
		return err
	}
	var in openapi.WebhookInput
	if err := decodeJSON(c, s.opts.maxBodyBytes, &in); err != nil {
		return err
	}
	spec := webhook.Spec{URL: in.Url, Events: deref(in.Events), Apps: deref(in.Apps), Actor: actor(c), ActorID: actorID(c)}
	if in.Format != nil {
		spec.Format = webhook.Format(*in.Format)
	}
	// A token limited to apps subscribes to those apps only.
	if p, ok := c.Get(ctxPrincipal).(*principal); ok && len(p.apps) > 0 {
		if len(spec.Apps) == 0 {
			spec.Apps = p.apps
		}
		for _, a := range spec.Apps {
			if !p.allowsApp(a) {
				return newProblem(openapi.ProblemForbidden, "token %s is limited to the apps %s, not %s", p.name, strings.Join(p.apps, ", "), a)
			}
		}
	}
	sub, secret, err := hooks.Create(c.Request().Context(), spec)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/v1/webhooks/"+sub.ID)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, webhookSecretResponse(sub, secret))
}

// ListWebhooks implements openapi.ServerInterface.
func (s *Server) ListWebhooks(c echo.Context, params openapi.ListWebhooksParams) error {
	hooks, err := s.webhooks()
	if err != nil {
		return err
	}
	limit, err := pageLimit(params.Limit)
	if err != nil {
		return err
	}
	after := ""
	if params.Cursor != nil && *params.Cursor != "" {
		if after, err = decodeCursor(*params.Cursor); err != nil {
			return err
		}
	}
	var subs []webhook.Subscription
	var next string
	if caller(c).limited() {
		subs, next, err = ownWebhooks(c, hooks, after, limit)
	} else {
		subs, next, err = hooks.List(c.Request().Context(), after, limit)
	}
	if err != nil {
		return err
	}
	out := openapi.WebhookList{Items: make([]openapi.Webhook, len(subs))}
	for i, sub := range subs {
		out.Items[i] = webhookResponse(sub)
	}
	if next != "" {
		out.NextCursor = ptr(encodeCursor(next))
	}
	return c.JSON(http.StatusOK, out)
}

// ownWebhooks is a page of the subscriptions a token limited to apps may see, as
// WebhookStore.List pages over all of them: up to limit of them in id order after the id
// after, and the id to pass as after for the next page ("" on the last). It filters
// inside its loop, reading the store a chunk (at most maxPageSize+1) at a time until it
// has the page and has seen one more it may see, or the store ends: so every page but the
// last is full, and the cursor names a subscription the token may see, never another. A
// page reads at most every subscription, as the dispatcher does for each batch of events.
func ownWebhooks(c echo.Context, hooks WebhookStore, after string, limit int) ([]webhook.Subscription, string, error) {
	chunk := min(max(limit+1, defaultPageSize), maxPageSize+1)
	var out []webhook.Subscription
	for {
		subs, next, err := hooks.List(c.Request().Context(), after, chunk)
		if err != nil {
			return nil, "", err
		}
		for _, sub := range subs {
			if !visibleWebhook(c, sub) {
				continue
			}
			if len(out) == limit {
				return out, out[limit-1].ID, nil // a page more
			}
			out = append(out, sub)
		}
		if next == "" {
			return out, "", nil
		}
		after = next
	}
}

// visibleWebhook reports whether the principal may see a subscription: a token limited
// to apps sees those limited to some of its apps.
func visibleWebhook(c echo.Context, sub webhook.Subscription) bool {
	p, ok := c.Get(ctxPrincipal).(*principal)
	if !ok || len(p.apps) == 0 {
		return true
	}
	return len(sub.Apps) > 0 && !slices.ContainsFunc(sub.Apps, func(a string) bool { return !p.allowsApp(a) })
}

// webhook returns the subscription of the path, if the principal may see it. One it may
// not see is answered exactly as an unknown id, so that ids cannot be probed.
func (s *Server) webhook(c echo.Context, id string) (WebhookStore, webhook.Subscription, error) {
	hooks, err := s.webhooks()
	if err != nil {
		return nil, webhook.Subscription{}, err
	}
	sub, err := hooks.Get(c.Request().Context(), id)
	if err != nil {
		return nil, webhook.Subscription{}, err
	}
	if !visibleWebhook(c, sub) {
		return nil, webhook.Subscription{}, fmt.Errorf("%w: no webhook %s", webhook.ErrNotFound, id) // as hooks.Get says it
	}
	return hooks, sub, nil
}

// GetWebhook implements openapi.ServerInterface.
func (s *Server) GetWebhook(c echo.Context, id openapi.WebhookID) error {
	_, sub, err := s.webhook(c, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, webhookResponse(sub))
}

// DeleteWebhook implements openapi.ServerInterface.
func (s *Server) DeleteWebhook(c echo.Context, id openapi.WebhookID) error {
	hooks, _, err := s.webhook(c, id)
	if err != nil {
		return err
	}
	if err := hooks.Delete(c.Request().Context(), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// RotateWebhookSecret implements openapi.ServerInterface.
func (s *Server) RotateWebhookSecret(c echo.Context, id openapi.WebhookID) error {
	hooks, _, err := s.webhook(c, id)
	if err != nil {
		return err
	}
	sub, secret, err := hooks.RotateSecret(c.Request().Context(), id)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, webhookSecretResponse(sub, secret))
}

// ListWebhookDeliveries implements openapi.ServerInterface.
func (s *Server) ListWebhookDeliveries(c echo.Context, id openapi.WebhookID, params openapi.ListWebhookDeliveriesParams) error {
	hooks, _, err := s.webhook(c, id)
	if err != nil {
		return err
	}
	limit, err := pageLimit(params.Limit)
	if err != nil {
		return err
	}
	before := ""
	if params.Cursor != nil && *params.Cursor != "" {
		if before, err = decodeCursor(*params.Cursor); err != nil {
			return err
		}
	}
	ds, next, err := hooks.Deliveries(c.Request().Context(), id, before, limit)
	if err != nil {
		return err
	}
	out := openapi.DeliveryList{Items: make([]openapi.Delivery, len(ds))}
	for i, d := range ds {
		out.Items[i] = deliveryResponse(d)
	}
	if next != "" {
		out.NextCursor = ptr(encodeCursor(next))
	}
	return c.JSON(http.StatusOK, out)
}

// GetWebhookDelivery implements openapi.ServerInterface.
func (s *Server) GetWebhookDelivery(c echo.Context, id openapi.WebhookID, delivery openapi.DeliveryID) error {
	hooks, _, err := s.webhook(c, id)
	if err != nil {
		return err
	}
	d, err := hooks.Delivery(c.Request().Context(), id, delivery)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, deliveryResponse(d))
}

// RedeliverWebhookDelivery implements openapi.ServerInterface.
func (s *Server) RedeliverWebhookDelivery(c echo.Context, id openapi.WebhookID, delivery openapi.DeliveryID) error {
	hooks, _, err := s.webhook(c, id)
	if err != nil {
		return err
	}
	d, err := hooks.Redeliver(c.Request().Context(), id, delivery)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, deliveryResponse(d))
}

func webhookResponse(sub webhook.Subscription) openapi.Webhook {
	return openapi.Webhook{
		Id: sub.ID, Url: sub.URL, Events: orEmpty(sub.Events), Apps: orEmpty(sub.Apps),
		Format: openapi.WebhookFormat(sub.Format), CreatedAt: sub.CreatedAt, CreatedBy: sub.CreatedBy,
		CreatedById: nonEmpty(sub.CreatedByID), PreviousSecretExpiresAt: sub.PreviousSecretExpiresAt,
	}
}

func webhookSecretResponse(sub webhook.Subscription, secret string) openapi.WebhookSecret {
	w := webhookResponse(sub)
	return openapi.WebhookSecret{
		Id: w.Id, Url: w.Url, Events: w.Events, Apps: w.Apps, Format: w.Format, CreatedAt: w.CreatedAt,
		CreatedBy: w.CreatedBy, CreatedById: w.CreatedById, PreviousSecretExpiresAt: w.PreviousSecretExpiresAt, Secret: secret,
	}
}

func deliveryResponse(d webhook.Delivery) openapi.Delivery {
	out := openapi.Delivery{
		Id: d.ID, WebhookId: d.Webhook, EventId: d.EventID, EventType: openapi.EventType(d.EventType), App: d.App,
		State: openapi.DeliveryState(d.State), Attempts: d.Attempts, LastAttemptAt: d.LastAttemptAt,
		NextAttemptAt: d.NextAttemptAt, CreatedAt: d.CreatedAt, GiveUpAt: d.GiveUpAt,
		RecentAttempts: make([]openapi.DeliveryAttempt, len(d.Recent)),
	}
	if d.LastStatus != 0 {
		out.LastStatus = ptr(d.LastStatus)
	}
	if d.LastError != "" {
		out.LastError = ptr(d.LastError)
	}
	for i, a := range d.Recent {
		at := openapi.DeliveryAttempt{At: a.At, DurationMs: a.DurationMS}
		if a.Status != 0 {
			at.Status = ptr(a.Status)
		}
		if a.Error != "" {
			at.Error = ptr(a.Error)
		}
		out.RecentAttempts[i] = at
	}
	return out
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
