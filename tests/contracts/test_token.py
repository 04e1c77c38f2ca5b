"""FedToken: fixed supply minted to the sponsor, ERC-20 transfers, EIP-2612 permit."""

from __future__ import annotations

from typing import Any

from eth_abi import encode
from eth_account import Account
from eth_utils import keccak
from helpers import reverts

from fedledger.chain.params import TOKEN, DeployParameters

DEADLINE_MARGIN = 3_600


def permit_signature(
    token: Any,
    chain: Any,
    holder: Any,
    spender: Any,
    value: int,
    nonce: int,
    deadline: int,
    signer: Any = None,
) -> tuple[int, bytes, bytes]:
    """Signs an EIP-2612 permit for `holder`'s tokens with `signer`'s test key (default: the
    holder's own); returns (v, r, s)."""
    signed = Account.sign_typed_data(
        (signer or holder).private_key,
        full_message={
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Permit": [
                    {"name": "owner", "type": "address"},
                    {"name": "spender", "type": "address"},
                    {"name": "value", "type": "uint256"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"},
                ],
            },
            "primaryType": "Permit",
            "domain": {
                "name": "fedledger Token",
                "version": "1",
                "chainId": chain.chain_id,
                "verifyingContract": str(token.address),
            },
            "message": {
                "owner": str(holder.address),
                "spender": str(spender.address),
                "value": value,
                "nonce": nonce,
                "deadline": deadline,
            },
        },
    )
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def test_deploy__supply_minted_to_holder(
    token: Any, task: Any, owner: Any, deploy_params: DeployParameters
) -> None:
    assert token.name() == "fedledger Token"
    assert token.symbol() == "FED"
    assert token.decimals() == 18
    assert token.totalSupply() == deploy_params.token_supply
    # deploy_all moved the reward pool from the holder to the task.
    assert token.balanceOf(owner) == deploy_params.token_supply - deploy_params.reward_pool
    assert token.balanceOf(task) == deploy_params.reward_pool


def test_transfer__moves_balance_and_emits(token: Any, owner: Any, outsider: Any) -> None:
    before = token.balanceOf(owner)

    tx = token.transfer(outsider, 5 * TOKEN, sender=owner)

    assert tx.events == [token.Transfer(owner, outsider, 5 * TOKEN)]
    assert token.balanceOf(outsider) == 5 * TOKEN
    assert token.balanceOf(owner) == before - 5 * TOKEN


def test_transfer__above_balance__reverts(token: Any, outsider: Any, owner: Any) -> None:
    with reverts(token.ERC20InsufficientBalance, sender=outsider.address, balance=0, needed=1):
        token.transfer(owner, 1, sender=outsider)


def test_domain_separator__matches_eip712(token: Any, chain: Any) -> None:
    domain_typehash = keccak(
        text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    expected = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                domain_typehash,
                keccak(text="fedledger Token"),
                keccak(text="1"),
                chain.chain_id,
                str(token.address),
            ],
        )
    )

    assert token.DOMAIN_SEPARATOR() == expected
    domain = token.eip712Domain()
    assert domain.name == "fedledger Token"
    assert domain.version == "1"
    assert domain.chainId == chain.chain_id
    assert domain.verifyingContract == token.address


def test_permit__valid_signature__sets_allowance_and_bumps_nonce(
    token: Any, chain: Any, trainers: list[Any], outsider: Any
) -> None:
    holder, spender, relayer = trainers[0], trainers[1], outsider
    deadline = int(chain.pending_timestamp) + DEADLINE_MARGIN
    nonce = token.nonces(holder)
    v, r, s = permit_signature(token, chain, holder, spender, 42 * TOKEN, nonce, deadline)

    tx = token.permit(holder, spender, 42 * TOKEN, deadline, v, r, s, sender=relayer)

    assert tx.events == [token.Approval(holder, spender, 42 * TOKEN)]
    assert token.allowance(holder, spender) == 42 * TOKEN
    assert token.nonces(holder) == nonce + 1


def test_permit__replayed__reverts(token: Any, chain: Any, trainers: list[Any], outsider: Any) -> None:
    holder, spender = trainers[0], trainers[1]
    deadline = int(chain.pending_timestamp) + DEADLINE_MARGIN
    v, r, s = permit_signature(token, chain, holder, spender, TOKEN, token.nonces(holder), deadline)
    token.permit(holder, spender, TOKEN, deadline, v, r, s, sender=outsider)

    # The nonce moved on, so the same signature now recovers to some other address.
    with reverts(token.ERC2612InvalidSigner, owner=holder.address):
        token.permit(holder, spender, TOKEN, deadline, v, r, s, sender=outsider)


def test_permit__signed_by_someone_else__reverts(
    token: Any, chain: Any, trainers: list[Any], outsider: Any
) -> None:
    holder, spender, forger = trainers[0], trainers[1], trainers[2]
    deadline = int(chain.pending_timestamp) + DEADLINE_MARGIN
    # The forger signs a permit naming the holder's tokens with its own key.
    v, r, s = permit_signature(token, chain, holder, spender, TOKEN, 0, deadline)
    v_f, r_f, s_f = permit_signature(token, chain, holder, spender, TOKEN, 0, deadline, signer=forger)
    assert (v_f, r_f, s_f) != (v, r, s)

    with reverts(token.ERC2612InvalidSigner, signer=forger.address, owner=holder.address):
        token.permit(holder, spender, TOKEN, deadline, v_f, r_f, s_f, sender=outsider)
    assert token.allowance(holder, spender) == 0


def test_permit__after_deadline__reverts(token: Any, chain: Any, trainers: list[Any], outsider: Any) -> None:
    holder, spender = trainers[0], trainers[1]
    deadline = int(chain.pending_timestamp) - 1
    v, r, s = permit_signature(token, chain, holder, spender, TOKEN, 0, deadline)

    with reverts(token.ERC2612ExpiredSignature, deadline=deadline):
        token.permit(holder, spender, TOKEN, deadline, v, r, s, sender=outsider)
