package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/chatops"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/release"
)

// ChatStore is what the API needs of the chat configuration; *chatops.Store implements
// it.
type ChatStore interface {
	Secret(ctx context.Context, p chatops.Platform) (string, error)
	Secrets(ctx context.Context) (map[chatops.Platform]chatops.SecretState, error)
	SetSecret(ctx context.Context, p chatops.Platform, secret string, by chatops.Actor) (chatops.SecretState, error)
	DeleteSecret(ctx context.Context, p chatops.Platform) error
	User(ctx context.Context, id string) (chatops.User, error)
	Users(ctx context.Context) ([]chatops.User, error)
	PutUser(ctx context.Context, spec chatops.UserSpec) (chatops.User, bool, error)
	DeleteUser(ctx context.Context, id string) error
}

// ChatPoster posts a command's late answer to its response_url; *chatops.Poster
// implements it.
type ChatPoster interface {
	Allowed(url string) bool
	Post(ctx context.Context, url string, m chatops.Message) error
}

var (
	_ ChatStore  = (*chatops.Store)(nil)
	_ ChatPoster = (*chatops.Poster)(nil)
)

const (
	// maxChatBody is the largest slash command read; Slack's and Mattermost's are a few
	// hundred bytes.
	maxChatBody = 64 << 10
	// chatMoveTimeout bounds a move that answers through response_url.
	chatMoveTimeout = time.Minute
	// chatReleases is how many releases the releases command lists.
	chatReleases = 10
)

func (s *Server) chat() (ChatStore, error) {
	if s.deps.Chat == nil {
		return nil, newProblem(openapi.ProblemNotFound, "chat commands are not set up on this server")
	}
	return s.deps.Chat, nil
}

// ChatSlack implements openapi.ServerInterface: a Slack slash command, verified by its
// signature before anything else is read of it.
func (s *Server) ChatSlack(c echo.Context, params openapi.ChatSlackParams) error {
	return s.chatCommand(c, chatops.Slack, func(ctx context.Context, chat ChatStore, body []byte) error {
		secret, err := chat.Secret(ctx, chatops.Slack)
		if err != nil {
			return err
		}
		return chatops.VerifySlack(secret, deref(params.XSlackRequestTimestamp), c.Request().Header.Get("X-Slack-Signature"), body, time.Now())
	})
}

// ChatMattermost implements openapi.ServerInterface: a Mattermost slash command, verified
// by its token before anything else is read of it.
func (s *Server) ChatMattermost(c echo.Context) error {
	return s.chatCommand(c, chatops.Mattermost, func(ctx context.Context, chat ChatStore, body []byte) error {
		hash, err := chat.Secret(ctx, chatops.Mattermost)
		if err != nil {
			return err
		}
		token, ok := cutPrefixFold(c.Request().Header.Get("Authorization"), "Token ")
		if !ok {
			form, _ := url.ParseQuery(string(body))
			token = form.Get("token")
		}
		return chatops.VerifyMattermost(hash, strings.TrimSpace(token))
	})
}

// chatCommand reads a slash command's body (at most maxChatBody), verifies it with
// verify, and answers it. A command that fails verification is refused with a problem
// and read no further; every later answer is a chat message.
func (s *Server) chatCommand(c echo.Context, p chatops.Platform, verify func(context.Context, ChatStore, []byte) error) error {
	ctx := c.Request().Context()
	chat, err := s.chat()
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxChatBody+1))
	if err != nil {
		return err
	}
	if len(body) > maxChatBody {
		return newProblem(openapi.ProblemBodyTooLarge, "a slash command is at most %d bytes", maxChatBody)
	}
	if err := verify(ctx, chat, body); err != nil {
		return err
	}
	req, err := chatops.ParseRequest(p, body)
	if err != nil {
		return s.chatAnswer(c, p.Message(chatops.Ephemeral, "slipway cannot read this command: "+err.Error()))
	}
	return s.chatAnswer(c, s.runCommand(c, chat, req))
}

// chatAnswer writes a chat message.
func (s *Server) chatAnswer(c echo.Context, m chatops.Message) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, m)
}

// runCommand answers a verified command: it parses it, finds the chat user's mapping,
// checks the scope the command needs on its app as a token's would be, and runs it.
func (s *Server) runCommand(c echo.Context, chat ChatStore, req chatops.Request) chatops.Message {
	ctx, rid := c.Request().Context(), requestID(c)
	p := req.Platform
	cmd, err := chatops.Parse(req.Text)
	if err != nil {
		return p.Message(chatops.Ephemeral, chatops.UsageText(req.Command, err))
	}
	if cmd.Verb == chatops.VerbHelp {
		return p.Message(chatops.Ephemeral, chatops.HelpText(req.Command))
	}
	user, err := chat.User(ctx, req.User())
	if errors.Is(err, chatops.ErrNotFound) {
		return p.Message(chatops.Ephemeral, chatops.UnmappedText(req))
	}
	if err != nil {
		return p.Message(chatops.Ephemeral, s.chatFailure(ctx, rid, cmd, err))
	}
	who := &principal{id: req.User(), name: req.Actor(), scopes: user.Scopes, apps: user.Apps}
	if !who.has(cmd.Scope(), cmd.Channel) || (cmd.Override && !who.has("override", cmd.Channel)) {
		return p.Message(chatops.Ephemeral, chatops.ScopeRefusedText(who.name, cmd, user.Scopes))
	}
	if !who.allowsApp(cmd.App) {
		return p.Message(chatops.Ephemeral, chatops.AppRefusedText(who.name, cmd.App, user.Apps))
	}
	if s.deps.Limiter != nil {
		ok, wait, err := s.deps.Limiter.Allow(ctx, who.id)
		if err != nil {
			return p.Message(chatops.Ephemeral, s.chatFailure(ctx, rid, cmd, err))
		}
		if !ok {
			return p.Message(chatops.Ephemeral, chatops.RateText(who.name, wait))
		}
	}
	switch cmd.Verb {
	case chatops.VerbStatus:
		chans, err := s.deps.Channels.List(ctx, cmd.App)
		if err != nil {
			return p.Message(chatops.Ephemeral, s.chatFailure(ctx, rid, cmd, err))
		}
		return p.Message(chatops.Ephemeral, chatops.StatusText(cmd.App, chans))
	case chatops.VerbReleases:
		rels, err := s.newestReleases(ctx, cmd.App)
		if err != nil {
			return p.Message(chatops.Ephemeral, s.chatFailure(ctx, rid, cmd, err))
		}
		return p.Message(chatops.Ephemeral, chatops.ReleasesText(cmd.App, rels))
	case chatops.VerbDiff:
		d, err := s.diff(ctx, cmd.App, cmd.Channel, cmd.Other)
		if err != nil {
			return p.Message(chatops.Ephemeral, s.chatFailure(ctx, rid, cmd, err))
		}
		return p.Message(chatops.Ephemeral, chatops.DiffText(cmd, d.Changes.Summary(d.From.Version, d.To.Version)))
	case chatops.VerbApprove:
		ap, created, err := s.deps.Channels.Approve(ctx, cmd.App, cmd.Channel, release.ApprovalSpec{
			Version: cmd.Version, Reason: cmd.Reason, Actor: who.name, ActorID: who.id})
		if err != nil {
			return p.Message(chatops.Ephemeral, s.chatFailure(ctx, rid, cmd, err))
		}
		return p.Message(chatops.ApprovedText(cmd, ap, created))
	}
	return s.chatMove(c, req, cmd)
}

// newestReleases are an app's newest releases, with the channels each is in.
func (s *Server) newestReleases(ctx context.Context, app string) ([]release.Release, error) {
	items, _, err := s.deps.Releases.Page(ctx, app, "", 0, chatReleases)
	if err != nil {
		return nil, err
	}
	out := make([]release.Release, len(items))
	for i, it := range items {
		if err := json.Unmarshal(it.Doc, &out[i]); err != nil {
			return nil, fmt.Errorf("decoding release %s: %w", it.Version, err)
		}
		out[i].Channels = it.Channels
	}
	return out, nil
}

// chatMove runs a move as the API's move routes do: conditional on the generation the
// command read (If-Match), once per command however often the chat service sends it
// (Idempotency-Key: the command's RetryKey), recorded with the chat user as the actor.
// The answer comes within the chat answer wait; a move that takes longer is answered
// with WorkingText, and its result is posted to the command's response_url.
func (s *Server) chatMove(c echo.Context, req chatops.Request, cmd chatops.Command) chatops.Message {
	ctx, rid, p := c.Request().Context(), requestID(c), req.Platform
	key := req.RetryKey()
	if key != "" {
		rec, err := s.deps.Idempotency.Begin(ctx, cmd.App, key, "chatops "+string(p))
		if err != nil {
			return p.Message(chatops.Ephemeral, s.chatFailure(ctx, rid, cmd, err))
		}
		if rec != nil {
			var first chatops.Message
			if rec.State == IdemDone && json.Unmarshal(rec.Body, &first) == nil {
				return first
			}
			return p.Message(chatops.Ephemeral, chatops.RetriedText(cmd))
		}
	}
	st, err := s.deps.Channels.Get(ctx, cmd.App, cmd.Channel)
	if err != nil {
		s.forgetChatKey(ctx, cmd.App, key)
		return p.Message(chatops.Ephemeral, s.chatFailure(ctx, rid, cmd, err))
	}
	m := cmd.Move()
	m.Actor, m.ActorID = req.Actor(), req.User()
	m.IfGeneration = st.Generation
	if st.Generation == 0 {
		m.IfGeneration = -1 // a channel never moved
	}

	// The move outlives the request when it answers late.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), chatMoveTimeout)
	done := make(chan chatops.Message, 1)
	go func() {
		defer cancel()
		res, err := s.deps.Channels.Move(mctx, cmd.App, cmd.Channel, m)
		msg := s.chatMoved(mctx, rid, req, cmd, res, err)
		if key != "" {
			if err != nil && isServerFault(err) {
				s.forgetChatKey(mctx, cmd.App, key) // the chat service's retry may try again
			} else if body, jerr := json.Marshal(msg); jerr == nil {
				if cerr := s.deps.Idempotency.Complete(mctx, cmd.App, key, IdemRecord{Status: http.StatusOK, Body: body}); cerr != nil {
					s.log.WarnContext(mctx, "recording a chat command's answer", "err", cerr, "request_id", rid)
				}
			}
		}
		done <- msg
	}()

	late := time.After(s.opts.chatAnswerWait)
	if s.deps.ChatPoster == nil || req.ResponseURL == "" || !s.deps.ChatPoster.Allowed(req.ResponseURL) {
		late = nil // no late answer can be given: this one waits for the move
	}
	select {
	case msg := <-done:
		return msg
	case <-late:
	}
	go func() {
		msg := <-done
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), chatMoveTimeout)
		defer cancel()
		if err := s.deps.ChatPoster.Post(pctx, req.ResponseURL, msg); err != nil {
			s.log.WarnContext(pctx, "posting a chat command's answer to its response_url", "err", err, "request_id", rid,
				"actor_id", req.User())
		}
	}()
	return p.Message(chatops.Ephemeral, chatops.WorkingText(cmd))
}

// chatMoved is the answer to a move: what it did, for everyone in the channel; the If-Match
// answer in chat words when another move came first; or why it failed.
func (s *Server) chatMoved(ctx context.Context, rid string, req chatops.Request, cmd chatops.Command, res release.MoveResult, err error) chatops.Message {
	p := req.Platform
	var stale *release.ChannelStaleError
	switch {
	case errors.As(err, &stale):
		return p.Message(chatops.Ephemeral, chatops.StaleText(req.Command, cmd, stale.Current))
	case err != nil:
		return p.Message(chatops.Ephemeral, s.chatFailure(ctx, rid, cmd, err))
	}
	rt, text := chatops.MovedText(cmd, res)
	if line := s.promotionDiff(ctx, rid, cmd, res); line != "" {
		text += "\n" + line
	}
	return p.Message(rt, text)
}

// promotionDiff is the line a promotion's answer adds about what changed: the modules
// and Go version of the release it replaced and the one it promoted; "" for any other
// move, or when the builds' facts cannot be read (which the log says).
func (s *Server) promotionDiff(ctx context.Context, rid string, cmd chatops.Command, res release.MoveResult) string {
	ev := res.Event
	if cmd.Verb != chatops.VerbPromote || !res.Changed || ev == nil || ev.FromVersion == "" || ev.FromVersion == ev.ToVersion {
		return ""
	}
	sum, err := release.NewDiffer(s.deps.Releases, FactSource(s.deps.Builds, s.deps.Blobs)).MoveSummary(ctx, cmd.App, ev.FromVersion, ev.ToVersion)
	if err != nil || sum == nil {
		s.log.InfoContext(ctx, "no diff for a chat promotion's answer", "app", cmd.App, "err", err, "request_id", rid)
		return ""
	}
	return chatops.DiffLine(*sum)
}

// forgetChatKey frees a command's retry key after a failure that was not the command's.
func (s *Server) forgetChatKey(ctx context.Context, app, key string) {
	if key == "" {
		return
	}
	if err := s.deps.Idempotency.Abort(ctx, app, key); err != nil {
		s.log.WarnContext(ctx, "freeing a chat command's retry key", "err", err)
	}
}

// isServerFault reports whether err is the server's (a dependency down, an internal
// error) rather than an answer to the command.
func isServerFault(err error) bool {
	k := toProblem(err).kind
	return k == openapi.ProblemInternal || k == openapi.ProblemDependencyUnavailable
}

// chatFailure says why a command failed, in the words of the problem the API would
// answer; the server's own faults are logged and named by request id only.
func (s *Server) chatFailure(ctx context.Context, rid string, cmd chatops.Command, err error) string {
	pr := toProblem(err)
	switch pr.kind {
	case openapi.ProblemInternal:
		s.log.ErrorContext(ctx, "chat command failed", "err", err, "request_id", rid)
		pr.detail = "the server failed; report request id " + rid
	case openapi.ProblemDependencyUnavailable:
		s.log.WarnContext(ctx, "a dependency is unavailable", "err", err, "request_id", rid)
		pr.detail = "Redis or the blob store did not answer, so nothing was done; send the command again in a few seconds"
	}
	return chatops.FailedText(cmd, kinds[pr.kind].title, pr.detail)
}

// GetChatops implements openapi.ServerInterface: never a secret.
func (s *Server) GetChatops(c echo.Context) error {
	chat, err := s.chat()
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	secrets, err := chat.Secrets(ctx)
	if err != nil {
		return err
	}
	users, err := s.visibleChatUsers(c, chat)
	if err != nil {
		return err
	}
	out := openapi.Chatops{Platforms: make([]openapi.ChatPlatformState, 0, len(chatops.Platforms)), Users: users}
	for _, p := range chatops.Platforms {
		out.Platforms = append(out.Platforms, chatPlatformResponse(p, secrets[p]))
	}
	return c.JSON(http.StatusOK, out)
}

// chatPlatform reads the path's platform.
func chatPlatform(platform openapi.ChatPlatform) (chatops.Platform, error) {
	p := chatops.Platform(platform)
	if !p.Valid() {
		return "", newProblem(openapi.ProblemNotFound, "no chat platform %q; the platforms are slack and mattermost", string(platform))
	}
	return p, nil
}

// chatAdmin refuses a caller limited to some apps: the chat secrets and the platforms
// serve every app.
func chatAdmin(c echo.Context) error {
	if p := caller(c); p.limited() {
		return newProblem(openapi.ProblemForbidden, "token %s is limited to the apps %s, and a chat platform's secret serves every app; use a token that is not limited", p.name, strings.Join(p.apps, ", "))
	}
	return nil
}

// chatSecretRoute checks a request to the secret of platform: chat commands are
// configured, the platform is known, and the caller may change secrets.
func (s *Server) chatSecretRoute(c echo.Context, platform openapi.ChatPlatform) (ChatStore, chatops.Platform, error) {
	chat, err := s.chat()
	if err != nil {
		return nil, "", err
	}
	p, err := chatPlatform(platform)
	if err != nil {
		return nil, "", err
	}
	return chat, p, chatAdmin(c)
}

// SetChatSecret implements openapi.ServerInterface. The secret is never answered or
// logged.
func (s *Server) SetChatSecret(c echo.Context, platform openapi.ChatPlatform) error {
	chat, p, err := s.chatSecretRoute(c, platform)
	if err != nil {
		return err
	}
	var in openapi.ChatSecretInput
	if err := decodeJSON(c, s.opts.maxBodyBytes, &in); err != nil {
		return err
	}
	if in.Secret == nil {
		return fieldProblem("secret", "required: the signing secret (Slack) or the command token (Mattermost)")
	}
	st, err := chat.SetSecret(c.Request().Context(), p, *in.Secret, chatops.Actor{Name: actor(c), ID: actorID(c)})
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, chatPlatformResponse(p, st))
}

// DeleteChatSecret implements openapi.ServerInterface.
func (s *Server) DeleteChatSecret(c echo.Context, platform openapi.ChatPlatform) error {
	chat, p, err := s.chatSecretRoute(c, platform)
	if err != nil {
		return err
	}
	if err := chat.DeleteSecret(c.Request().Context(), p); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// ListChatUsers implements openapi.ServerInterface: a caller limited to some apps sees
// the mappings limited to some of its apps.
func (s *Server) ListChatUsers(c echo.Context) error {
	chat, err := s.chat()
	if err != nil {
		return err
	}
	users, err := s.visibleChatUsers(c, chat)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, openapi.ChatUserList{Items: users})
}

func (s *Server) visibleChatUsers(c echo.Context, chat ChatStore) ([]openapi.ChatUser, error) {
	users, err := chat.Users(c.Request().Context())
	if err != nil {
		return nil, err
	}
	p := caller(c)
	out := make([]openapi.ChatUser, 0, len(users))
	for _, u := range users {
		if p.within(u.Apps) {
			out = append(out, chatUserResponse(u))
		}
	}
	return out, nil
}

// chatUser returns a mapping the caller may see; any other answers as an unknown one.
func (s *Server) chatUser(c echo.Context, chat ChatStore, id string) (chatops.User, error) {
	u, err := chat.User(c.Request().Context(), id)
	if err == nil && !caller(c).within(u.Apps) {
		err = fmt.Errorf("%w: no chat user %s", chatops.ErrNotFound, id)
	}
	return u, err
}

// GetChatUser implements openapi.ServerInterface.
func (s *Server) GetChatUser(c echo.Context, user openapi.ChatUserID) error {
	chat, err := s.chat()
	if err != nil {
		return err
	}
	u, err := s.chatUser(c, chat, user)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, chatUserResponse(u))
}

// PutChatUser implements openapi.ServerInterface. As with tokens, a caller never maps a
// chat user wider than itself.
func (s *Server) PutChatUser(c echo.Context, user openapi.ChatUserID) error {
	chat, err := s.chat()
	if err != nil {
		return err
	}
	if why := chatops.ValidUserID(user); why != "" {
		return newProblem(openapi.ProblemNotFound, "%s", why)
	}
	var in openapi.ChatUserInput
	if err := decodeJSON(c, s.opts.maxBodyBytes, &in); err != nil {
		return err
	}
	var verr release.ValidationError
	if len(in.Scopes) == 0 {
		verr.Add("scopes", "at least one scope: read, build, release, promote, promote:<channel>, approve, approve:<channel>, override, override:<channel> or admin")
	}
	for i, sc := range in.Scopes {
		if !validScope(sc) {
			verr.Add(fmt.Sprintf("scopes[%d]", i), fmt.Sprintf("%q is not read, build, release, promote, promote:<channel>, approve, approve:<channel>, override, override:<channel> or admin", sc))
		}
	}
	apps := deref(in.Apps)
	if len(apps) > maxTokenApps {
		verr.Add("apps", fmt.Sprintf("%d apps; a chat user may be limited to at most %d", len(apps), maxTokenApps))
	}
	for i, a := range apps {
		if err := release.ValidateName(a); err != nil {
			verr.Add(fmt.Sprintf("apps[%d]", i), err.Error())
		}
	}
	if err := verr.Err(); err != nil {
		return err
	}
	p := caller(c)
	if err := p.mayCreate(in.Scopes, apps); err != nil {
		return err
	}
	if p.limited() {
		// Replaces only a mapping the caller may see; any other answers as an unknown one.
		if old, err := chat.User(c.Request().Context(), user); err == nil && !p.within(old.Apps) {
			return fmt.Errorf("%w: no chat user %s", chatops.ErrNotFound, user)
		}
	}
	u, created, err := chat.PutUser(c.Request().Context(), chatops.UserSpec{
		ID: user, Scopes: in.Scopes, Apps: apps, Actor: chatops.Actor{Name: actor(c), ID: actorID(c)},
	})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, chatUserResponse(u))
}

// DeleteChatUser implements openapi.ServerInterface.
func (s *Server) DeleteChatUser(c echo.Context, user openapi.ChatUserID) error {
	chat, err := s.chat()
	if err != nil {
		return err
	}
	if _, err := s.chatUser(c, chat, user); err != nil {
		return err
	}
	if err := chat.DeleteUser(c.Request().Context(), user); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func chatPlatformResponse(p chatops.Platform, st chatops.SecretState) openapi.ChatPlatformState {
	out := openapi.ChatPlatformState{Platform: openapi.ChatPlatformName(p), SecretSet: st.Set, Url: "/v1/chatops/" + string(p)}
	if st.Set {
		out.SetAt = ptr(st.SetAt)
		out.SetBy = nonEmpty(st.SetBy.Name)
		out.SetById = nonEmpty(st.SetBy.ID)
	}
	return out
}

func chatUserResponse(u chatops.User) openapi.ChatUser {
	return openapi.ChatUser{
		Id: u.ID, Scopes: orEmpty(u.Scopes), Apps: orEmpty(u.Apps),
		CreatedAt: u.CreatedAt, CreatedBy: u.CreatedBy.Name, CreatedById: nonEmpty(u.CreatedBy.ID),
		UpdatedAt: u.UpdatedAt, UpdatedBy: u.UpdatedBy.Name, UpdatedById: nonEmpty(u.UpdatedBy.ID),
	}
}
