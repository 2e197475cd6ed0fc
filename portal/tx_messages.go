package portal

import (
	"github.com/intermesh/intermesh/log"
)

// listMessages answers ListMessages: the CatalogedPublications published
// for an account since it was (last) created, oldest first, paged like
// ConnectPending (each page examines at most MaxPageExamined records). They
// reveal who receives what and when, so every page needs an AccountProof
// (for ListMessages) signed by a key of the account's profile, and a page
// key only continues the account it was issued for. Messages published
// for an earlier account of the same name, deleted since, are not listed.
func (s *Server) listMessages(req *ListMessagesRequest) (*ListMessagesResponse, error) {
	const field = "ListMessagesRequest"
	b, err := s.pageBounds(field, req.SearchConstraints)
	if err != nil {
		return nil, err
	}
	account, acct, err := s.connectAccount(field+".AccountID", req.AccountID)
	if err != nil {
		return nil, err
	}
	if _, err := s.verifyAccountProof(field+".Proof", req.Proof, account, acct, TxListMessages, nil); err != nil {
		return nil, err
	}
	c := cursor{Tx: TxListMessages, Name: account}
	c.NotBefore, c.Before = timeWindow(req.SearchConstraints)
	if sc := req.SearchConstraints; sc != nil && sc.PageKey != "" {
		if c, err = s.decodeCursor(field+".SearchConstraints", TxListMessages, sc.PageKey); err != nil {
			return nil, err
		}
		if c.Name != account {
			return nil, Errorf(ClientBadRequest, "%s.SearchConstraints.PageKey continues another account's messages, not %q", field, req.AccountID)
		}
	}
	c.Next = max(c.Next, acct.Seq+1) // not an earlier account's of the same name
	recs, next, err := s.collect(s.localSource(tagMessage), c, b, func(r *log.Record) int { return len(r.Payload) })
	if err != nil {
		return nil, err
	}
	resp := &ListMessagesResponse{PageKey: next}
	for i := range recs {
		item := dataItem(&recs[i], false, true)
		seq, t := recs[i].Seq, recs[i].Time
		item.Index, item.Time = &seq, &t
		resp.DataItems = append(resp.DataItems, item)
	}
	return resp, nil
}
