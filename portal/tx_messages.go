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
	c, b, acct, err := s.privatePage("ListMessagesRequest", TxListMessages, req.AccountID, req.Proof, req.SearchConstraints, "messages")
	if err != nil {
		return nil, err
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
